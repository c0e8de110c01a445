//! The results: the table printed for people, the JSON recorded for comparing runs, and the
//! program's verifier and JIT figures.
use anyhow::{Context as _, Result};
use aya::programs::Xdp;
use lb_userspace::testkit::lb::{XDP_TX, action_name};
use serde_json::{Value, json};

use crate::Measured;
use crate::run::Settings;
use crate::{cases, inprog};

/// What the verifier and the JIT made of a program: its instruction count after verification
/// and the sizes of its translated (xlated) and native (JITed) code.
pub fn program_info(prog: &Xdp, load_ms: Option<f64>) -> Result<Value> {
    let info = prog.info().context("reading the program's info")?;
    let xlated = info.size_translated();
    Ok(json!({
        "verified_insns": info.verified_instruction_count(),
        "xlated_bytes": xlated,
        // eBPF instructions are 8 bytes (a 16-byte wide load counts as two).
        "xlated_insns": xlated.map(|b| b / 8),
        "jited_bytes": info.size_jitted(),
        "load_ms": load_ms,
    }))
}

/// Nearest-rank median (the lower middle of an even count): always a measured trial.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(v), min, max)
}

pub struct Row {
    /// Net ns over trials: median, min, max.
    pub net: (f64, f64, f64),
    baseline: f64,
    within: Option<bool>,
    /// Medians over trials of the flow-table floor (net of the empty program) and of what the
    /// load balancer adds to it (each trial's own difference).
    floor: Option<(f64, f64)>,
}

pub fn row(m: &Measured) -> Row {
    let t = &m.outcome.trials;
    let net = stats(&t.iter().map(|t| t.net_ns()).collect::<Vec<_>>());
    let floor: Option<Vec<f64>> = t.iter().map(|t| t.floor_net_ns()).collect();
    let over: Option<Vec<f64>> = t.iter().map(|t| t.over_floor_ns()).collect();
    Row {
        net,
        baseline: median(&t.iter().map(|t| t.baseline_ns).collect::<Vec<_>>()),
        within: m.case.target.map(|b| net.0 <= b.ns),
        floor: floor.zip(over).map(|(f, o)| (median(&f), median(&o))),
    }
}

pub fn case_json(m: &Measured) -> Value {
    let r = row(m);
    let t = &m.outcome.trials;
    json!({
        "name": m.case.name,
        "about": m.case.about,
        "target": m.case.target.map(|b| json!({ "what": b.what, "ns": b.ns })),
        "within_target": r.within,
        "net_ns": { "median": r.net.0, "min": r.net.1, "max": r.net.2 },
        "baseline_ns_median": r.baseline,
        "case_ns_median": median(&t.iter().map(|t| t.case_ns).collect::<Vec<_>>()),
        "flow_table_floor": m.outcome.floor.as_ref().zip(r.floor).map(|(f, (floor, over))| {
            json!({
                "program": "sheave_flow_floor: the production parser, then only the flow-table \
                            lookup and, on a miss, the insert; timed in the same trials",
                "net_ns_median": floor,
                "sheave_over_floor_ns_median": over,
                "flow_table": f.flow_table,
                "checks_ok": f.problems.is_empty(),
                "problems": f.problems,
            })
        }),
        "trials": t.iter().map(|t| json!({
            "case_ns": t.case_ns, "baseline_ns": t.baseline_ns, "net_ns": t.net_ns(),
            "floor_ns": t.floor_ns,
        })).collect::<Vec<_>>(),
        "flow_table": m.outcome.flow_table,
        "checks_ok": m.outcome.problems.is_empty(),
        "problems": m.outcome.problems,
        "in_program_ns": m.in_program.json(),
        "other_cpus_busy_pct": m.activity.others_busy,
        "steal_pct": m.activity.steal,
    })
}

pub fn print_table(measured: &[Measured], s: &Settings, lb: &Value, pass: &Value) {
    println!(
        "\nPer-packet cost of sheave_lb: single BPF_PROG_TEST_RUN calls (repeat = 1), {} calls x {} \
         trials per case.\nns per packet net of an empty XDP program timed alternately in the same \
         trials (its own figure: \"empty\");\ningress fx0, so forwarded packets are XDP_TX. \
         Budgets are the issue's, for the net median (noisy machine: +-25%).\n\"others\": how \
         busy the other CPUs were during the case (they share caches and memory with ours).\n\
         \"floor\": the same calls, on the same table state, through sheave_flow_floor (parse, then \
         only the flow-table lookup and\non a miss the insert: the kernel map's share), timed in \
         the same trials on its own table; \"ours\": what sheave_lb adds to it (medians).",
        s.calls, s.trials,
    );
    println!(
        "  {:<24} {:<6} | {:^23} | {:^13} | {:>5} | {:>6} |",
        "", "", "net ns, over trials", "of which", "empty", "others"
    );
    println!(
        "  {:<24} {:<6} | {:>7} {:>7} {:>7} | {:>6} {:>6} | {:>5} | {:>6} | {:>26} | flow table",
        "case", "action", "median", "min", "max", "floor", "ours", "ns", "busy", "budget (issue)"
    );
    for m in measured {
        let r = row(m);
        let budget = match (m.case.target, r.within) {
            (Some(b), Some(ok)) => {
                let verdict = if ok { "ok" } else { "OVER" };
                format!("{} <= {} {verdict}", b.what, b.ns)
            }
            _ => "-".into(),
        };
        let action = match &m.case.traffic {
            cases::Traffic::Fixed { action, .. } => action_name(*action),
            _ => action_name(XDP_TX),
        };
        let (floor, ours) = match r.floor {
            Some((f, o)) => (format!("{f:.1}"), format!("{o:.1}")),
            None => ("-".into(), "-".into()),
        };
        println!(
            "  {:<24} {:<6} | {:>7.1} {:>7.1} {:>7.1} | {floor:>6} {ours:>6} | {:>5.1} | {:>5.0}% | \
             {budget:>26} | {}",
            m.case.name,
            action.trim_start_matches("XDP_"),
            r.net.0,
            r.net.1,
            r.net.2,
            r.baseline,
            m.activity.others_busy,
            m.outcome.flow_table
        );
    }
    println!(
        "  sheave_lb: {} instructions verified, {} xlated ({} B), {} B JITed; sheave_pass (the \
         empty program): {} B JITed",
        lb["verified_insns"],
        lb["xlated_insns"],
        lb["xlated_bytes"],
        lb["jited_bytes"],
        pass["jited_bytes"]
    );
    let steal = measured
        .iter()
        .map(|m| m.activity.steal)
        .fold(0.0, f64::max);
    if steal >= 1.0 {
        println!(
            "  warn  the hypervisor took up to {steal:.0}% of our CPU during a case (steal time): \
             figures inflated"
        );
    }
    println!(
        "\nIn-program cost (sheave_lb_bench: the same packet function in a bpf_loop of {} \
         iterations, frame restored between them;\nns per iteration net of a restore-only loop, \
         over {} program runs; test_run's own overhead excluded):",
        inprog::ITERATIONS,
        inprog::RUNS
    );
    println!(
        "  {:<24} | {:>7} {:>7} {:>7} | {:>7}",
        "case", "median", "p1", "p99", "restore"
    );
    for m in measured {
        let p = &m.in_program;
        println!(
            "  {:<24} | {:>7.1} {:>7.1} {:>7.1} | {:>7.1}",
            m.case.name, p.median, p.p1, p.p99, p.restore
        );
    }
    for m in measured.iter().filter(|m| !m.outcome.problems.is_empty()) {
        println!(
            "  CHECK FAILED {}: {} (its figures do not measure what the name says)",
            m.case.name,
            m.outcome.problems.join("; ")
        );
    }
    for (m, f) in measured
        .iter()
        .filter_map(|m| Some((m, m.outcome.floor.as_ref()?)))
        .filter(|(_, f)| !f.problems.is_empty())
    {
        println!(
            "  CHECK FAILED {} (floor): {}",
            m.case.name,
            f.problems.join("; ")
        );
    }
}
