//! `cargo xtask fuzz`: the long fuzz run. The same trials as the suite's short run (the
//! dataplane harness's `fuzz/` tests: random and mutated packets through the XDP programs under
//! BPF_PROG_TEST_RUN, each checked against an independent model), with a million packets by
//! default and a fresh seed each time, built in release mode for speed.
//!
//! A failure prints the seed and case index with a command that replays it, and the input as a
//! hex file to add to `lb-userspace/tests/fuzz-corpus/`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup;

/// What the dataplane harness reads (see `lb-userspace/tests/dataplane/fuzz/`).
const SEED_ENV: &str = "SHEAVE_FUZZ_SEED";
const ITERATIONS_ENV: &str = "SHEAVE_FUZZ_ITERATIONS";
const CASE_ENV: &str = "SHEAVE_FUZZ_CASE";
const KEEP_GOING_ENV: &str = "SHEAVE_FUZZ_KEEP_GOING";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Packets through the load balancer (the decap program gets a quarter as many).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    iterations: u64,
    /// RNG seed, decimal or 0x-hex [default: a fresh one, printed].
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Replay only this case index (with the seed it failed with).
    #[arg(long, requires = "seed")]
    case: Option<u64>,
    /// Do not stop at the first failure: report the first case of each kind of failure.
    #[arg(long)]
    keep_going: bool,
    /// Do not run `cargo xtask setup` first (use what an earlier setup recorded).
    #[arg(long)]
    skip_setup: bool,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

/// Refuses early, before anything slow, when not root: the trials load XDP programs and enter a
/// network namespace.
pub fn check_root() -> Result<()> {
    if !cmd::is_root() {
        bail!(
            "`cargo xtask fuzz` must run as root: it loads XDP programs (BPF_PROG_TEST_RUN) in a \
             private network namespace. Try `sudo -E env \"PATH=$PATH\" cargo xtask fuzz`"
        );
    }
    Ok(())
}

/// A seed nobody chose: the clock and the process id, mixed (splitmix64's finalizer) so that
/// runs started close together still differ in every bit.
fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn run(ws: &Workspace, args: &Args) -> Result<()> {
    let env = setup::run_or_load(ws, args.skip_setup)?;
    let seed = args.seed.unwrap_or_else(fresh_seed);
    match args.case {
        Some(case) => eprintln!("== fuzz: replaying case {case} of seed {seed:#x}"),
        None => eprintln!(
            "== fuzz: seed {seed:#x}, {} packets through the load balancer, {} through decap",
            args.iterations,
            (args.iterations / 4).max(1)
        ),
    }
    // Release: the generator and the checks run per packet, and a debug build would make them,
    // not the kernel, the bottleneck.
    let mut c = ws.cargo([
        "test",
        "--release",
        "-p",
        "lb-userspace",
        "--test",
        "dataplane",
        "--",
        "fuzz/",
    ]);
    c.env(SEED_ENV, format!("{seed:#x}"))
        .env(ITERATIONS_ENV, args.iterations.to_string());
    if let Some(case) = args.case {
        c.env(CASE_ENV, case.to_string());
    }
    if args.keep_going {
        c.env(KEEP_GOING_ENV, "1");
    }
    env.apply(&mut c);
    let start = Instant::now();
    match cmd::run(&mut c) {
        Ok(_) => {
            eprintln!(
                "xtask fuzz: PASSED in {} (seed {seed:#x}, {} packets)",
                cmd::human(start.elapsed()),
                args.iterations
            );
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "xtask fuzz: FAILED after {} with seed {seed:#x}; rerun the same cases with \
                 `cargo xtask fuzz --seed {seed:#x} --iterations {}` (or one case: add \
                 `--case N`)",
                cmd::human(start.elapsed()),
                args.iterations
            );
            Err(e)
        }
    }
}
