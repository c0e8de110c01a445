//! Per-packet cost of the XDP program: `cargo xtask bench packet` builds this in release mode and
//! runs it (as root); by hand:
//!
//! ```sh
//! cargo build --release -p lb-userspace --features bench --example bench-packet
//! sudo target/release/examples/bench-packet [--calls 20000] [--trials 5] [--case NAME] [--json F]
//! ```
//!
//! Each case is a packet pattern (see `cases.rs`) run through the real program, loaded and filled
//! by the daemon's own code, as single BPF_PROG_TEST_RUN calls (repeat = 1: the program rewrites
//! the packet, so the kernel's repeat loop would time the wrong thing). The figure is the mean
//! kernel-reported duration per call minus that of an empty XDP program, measured alternately in
//! the same trials so that drift affects both; the median over trials is the one to quote. The
//! machine is shared and noisy: budgets are compared, never asserted. Every call's action and
//! the flow-table counters are checked, so a figure always measures what its name says.
mod activity;
mod cases;
mod inprog;
mod report;
mod run;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{Ebpf, programs::Xdp};
use clap::Parser;
// The dataplane tests' private namespace (veth with static neighbours): the benchmark needs
// exactly the environment the fixtures run in.
use lb_userspace::testkit::{netns, pin_to_current_cpu};
use serde_json::{Value, json};

use activity::{Activity, Snapshot};
use cases::{CLIENT_SPACE, Case};
use report::{case_json, print_table, program_info, row};
use run::{Outcome, Settings};

/// Untimed calls of each program before the first trial (caches, branch predictors).
const WARMUP: u64 = 2_000;

#[derive(Parser)]
#[command(about = "Sheave's per-packet benchmark through BPF_PROG_TEST_RUN (needs root)")]
struct Cli {
    /// Timed calls per trial, for the case and the empty program each.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    calls: u64,
    /// Trials per case; the median over them is the figure to quote.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=101))]
    trials: u64,
    /// Run only these cases (repeatable); all by default.
    #[arg(long = "case", value_name = "NAME")]
    cases: Vec<String>,
    /// Also write the raw figures here, as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

struct Measured {
    case: Case,
    outcome: Outcome,
    activity: Activity,
    in_program: inprog::InProgram,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // First, while the process has one thread: unshare moves only the calling thread.
    let ns = netns::enter()?;
    // Every call then runs on the same CPU, so per-CPU state (the flow table's LRU list,
    // counters, caches) is the same for all of a case's calls, and the full-table case knows
    // which LRU list it fills.
    let cpu = pin_to_current_cpu()?;
    let possible_cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow!("{what}: {e}"))?;
    let settings = Settings {
        calls: cli.calls,
        trials: cli.trials as usize,
        warmup: WARMUP,
        ingress: ns.fx0,
        lru_share: u64::from(flow_table_size()?) / possible_cpus as u64,
    };
    // The full-table case fills a share first; every case's new clients must stay distinct.
    if settings.lru_share * 2 + settings.case_calls() > CLIENT_SPACE {
        bail!("warm-up + calls x trials exceeds the {CLIENT_SPACE} distinct new-flow clients");
    }
    let cases = chosen(&cli.cases)?;

    // The empty program, loaded once and attached nowhere.
    let mut pass = Ebpf::load(lb_userspace::dataplane::objects::PASS)?;
    let baseline: &mut Xdp = pass
        .program_mut("sheave_pass")
        .context("sheave_pass missing from its object")?
        .try_into()?;
    baseline.load()?;
    let baseline_info = program_info(baseline, None)?;

    let mut lb_info = Value::Null;
    let mut measured = Vec::new();
    for case in cases {
        let t = Instant::now();
        let m = measure(case, baseline, &settings, cpu, &mut lb_info)?;
        eprintln!(
            "  {:<24} {:>7.1} ns net (median of {}), {:.1} s",
            m.case.name,
            row(&m).net.0,
            settings.trials,
            t.elapsed().as_secs_f64()
        );
        measured.push(m);
    }

    print_table(&measured, &settings, &lb_info, &baseline_info);
    if let Some(path) = &cli.json {
        let v = json!({
            "method": "BPF_PROG_TEST_RUN, repeat = 1, mean kernel-reported ns per call, minus \
                       the empty program's in the same trial",
            "calls_per_trial": settings.calls,
            "trials": settings.trials,
            "warmup_calls": settings.warmup,
            "ingress": "fx0 (forwarded packets: XDP_TX)",
            "pinned_cpu": cpu,
            "possible_cpus": possible_cpus,
            "flow_table_size": flow_table_size()?,
            "programs": { "sheave_lb": lb_info, "sheave_pass": baseline_info },
            "cases": measured.iter().map(case_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One case on a freshly loaded program (whose verifier and JIT figures go to `lb_info` the first
/// time: every load is the same program).
fn measure(
    case: Case,
    baseline: &Xdp,
    settings: &Settings,
    cpu: usize,
    lb_info: &mut Value,
) -> Result<Measured> {
    let t = Instant::now();
    let mut dp =
        run::load(settings).with_context(|| format!("{}: loading the program", case.name))?;
    if lb_info.is_null() {
        *lb_info = program_info(dp.program()?, Some(t.elapsed().as_secs_f64() * 1e3))?;
    }
    let before = Snapshot::take();
    // The floor runs on its own table, prepared the same way, in the same trials.
    let mut floor_dp = match case.uses_flow_table() {
        true => {
            Some(run::load(settings).with_context(|| format!("{}: loading the floor", case.name))?)
        }
        false => None,
    };
    let outcome = run::run(&case, &mut dp, floor_dp.as_mut(), baseline, settings)
        .with_context(|| case.name.to_string())?;
    drop(floor_dp);
    let activity = before.until(&Snapshot::take(), cpu);
    let in_program = inprog::measure(&case, &mut dp, settings.ingress)
        .with_context(|| format!("{}: in-program timing", case.name))?;
    Ok(Measured {
        case,
        outcome,
        activity,
        in_program,
    })
}

fn chosen(names: &[String]) -> Result<Vec<Case>> {
    let all = cases::all();
    if let Some(unknown) = names
        .iter()
        .find(|n| !all.iter().any(|c| c.name == n.as_str()))
    {
        let known: Vec<&str> = all.iter().map(|c| c.name).collect();
        bail!("no case {unknown}; cases: {}", known.join(", "));
    }
    Ok(all
        .into_iter()
        .filter(|c| names.is_empty() || names.iter().any(|n| n == c.name))
        .collect())
}

fn flow_table_size() -> Result<u32> {
    Ok(lb_userspace::config::Config::parse(cases::CONFIG)?
        .dataplane
        .flow_table_size)
}
