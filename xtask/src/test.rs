//! `cargo xtask test`: setup, lints, build, then every test (unit tests, the dataplane fixtures
//! and the network-namespace lab), with cargo's output streamed through and one summary line.
//!
//! Lints do not stop the run: a formatting slip should not hide a failing test. A failed build
//! does, since the tests would only fail the same way.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup;
use crate::signals;

mod tally;
use tally::Tally;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not run `cargo xtask setup` first (use what an earlier setup recorded).
    #[arg(long)]
    skip_setup: bool,
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Passed to `cargo test --workspace`, e.g. a filter: `cargo xtask test -- lab_`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_test_args: Vec<String>,
}

enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped(&'static str),
}

/// Runs cargo steps with the build environment and records how each went.
struct Runner<'a> {
    ws: &'a Workspace,
    env: setup::BuildEnv,
    steps: Vec<(&'static str, Outcome)>,
    /// Tests passed and failed over every test binary (see `tally`).
    counts: Tally,
}

impl Runner<'_> {
    /// Runs `cargo ARGS` as step `name`; whether it passed.
    fn cargo(&mut self, name: &'static str, args: &[&str], extra: &[String]) -> bool {
        if signals::interrupted() {
            self.skip(name, "interrupted");
            return false;
        }
        eprintln!("== test: {name}");
        let mut c = self.ws.cargo(args);
        c.args(extra);
        self.env.apply(&mut c);
        let t = Instant::now();
        let outcome = match cmd::run_tee(&mut c) {
            Ok(run) => {
                self.counts.add(tally::parse(&run.stdout));
                if run.status.success() {
                    Outcome::Passed(run.elapsed)
                } else {
                    eprintln!("xtask: {name} failed ({})", run.status);
                    Outcome::Failed(run.elapsed)
                }
            }
            Err(e) => {
                eprintln!("xtask: {name} failed: {e:#}");
                Outcome::Failed(t.elapsed())
            }
        };
        let passed = matches!(outcome, Outcome::Passed(_));
        self.steps.push((name, outcome));
        passed
    }

    /// Listed in the summary rather than left out: it should not look greener than the run was.
    fn skip(&mut self, name: &'static str, why: &'static str) {
        self.steps.push((name, Outcome::Skipped(why)));
    }
}

/// Refuses early, before anything slow, when not root: the dataplane fixtures load XDP programs
/// (BPF_PROG_TEST_RUN) and the lab creates network namespaces, and skipping them quietly would
/// report a pass for tests that never ran.
pub fn check_root() -> Result<()> {
    if !cmd::is_root() {
        bail!(
            "`cargo xtask test` must run as root: the dataplane tests load XDP programs and the \
             lab tests create network namespaces. Try `sudo -E env \"PATH=$PATH\" cargo xtask \
             test`, or run the unit tests alone with `cargo test --workspace --lib`"
        );
    }
    Ok(())
}

/// Features every cargo step here builds with. `lb-userspace/bench` builds the bench object too,
/// so that the fixtures of the bench-only entry points run (sheaved still embeds the production
/// object: lb-userspace's `objects` unit tests check what each object carries). The test step
/// gets `lb-userspace/testkit` anyway (the dataplane test's dev-dependency); naming it for the
/// build step too keeps one feature set, so lb-userspace and its XDP objects build once.
const FEATURES: &str = "lb-userspace/bench,lb-userspace/testkit";
/// Clippy also lints the eBPF crate's bench-only entry points (built for the host there).
const LINT_FEATURES: &str = "lb-userspace/bench,lb-userspace/testkit,lb-ebpf/bench";

pub fn run(ws: &Workspace, args: &Args) -> Result<()> {
    let start = Instant::now();
    let env = setup::run_or_load(ws, args.skip_setup)?;
    // main() exported it unless the caller had; the lab tests find sheaved & co. there.
    if let Some(dir) = std::env::var_os(cmd::BIN_DIR_ENV) {
        eprintln!("== test: {}={}", cmd::BIN_DIR_ENV, dir.to_string_lossy());
    }
    let mut r = Runner {
        ws,
        env,
        steps: Vec::new(),
        counts: Tally::default(),
    };
    if args.no_lint {
        r.skip("fmt", "--no-lint");
        r.skip("clippy", "--no-lint");
    } else {
        r.cargo("fmt", &["fmt", "--all", "--", "--check"], &[]);
        let clippy = [
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            LINT_FEATURES,
            "--",
            "-D",
            "warnings",
        ];
        r.cargo("clippy", &clippy, &[]);
    }
    // The lab tests run these binaries; `cargo test` alone would build only what the test
    // targets link.
    let build = ["build", "--workspace", "--bins", "--features", FEATURES];
    if r.cargo("build", &build, &[]) {
        // Every test binary runs even after one fails, so the counts cover the whole suite.
        r.cargo(
            "test",
            &[
                "test",
                "--workspace",
                "--no-fail-fast",
                "--features",
                FEATURES,
            ],
            &args.cargo_test_args,
        );
    } else if !signals::interrupted() {
        r.skip("test", "build failed");
    }
    let result = summarize(&r.steps, start.elapsed());
    // One closing line over all test binaries (cargo's own last line is often an empty doc-test
    // run). A failed step that reported no failing test (a build error, a crash before any
    // binary ran) still counts as one failure: the line must never read greener than the run.
    let mut counts = r.counts;
    if result.is_err() && counts.failed == 0 {
        counts.failed = 1;
    }
    println!("{}", counts.line());
    result
}

fn summarize(steps: &[(&'static str, Outcome)], total: Duration) -> Result<()> {
    let failed: Vec<&str> = steps
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(name, _)| *name)
        .collect();
    let parts: Vec<String> = steps
        .iter()
        .map(|(name, o)| match o {
            Outcome::Passed(d) => format!("{name} ok {}", cmd::human(*d)),
            Outcome::Failed(d) => format!("{name} FAILED {}", cmd::human(*d)),
            Outcome::Skipped(why) => format!("{name} skipped ({why})"),
        })
        .collect();
    let verdict = if signals::interrupted() {
        "INTERRUPTED"
    } else if failed.is_empty() {
        "PASSED"
    } else {
        "FAILED"
    };
    eprintln!();
    eprintln!(
        "xtask test: {verdict} in {} [{}]",
        cmd::human(total),
        parts.join(", ")
    );
    if signals::interrupted() {
        return Err(signals::Interrupted.into());
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}
