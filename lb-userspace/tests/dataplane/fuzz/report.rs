//! Reporting: failure reports that replay a case, failures by kind, the coverage tally.
use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Instant};

use anyhow::{Result, bail, ensure};
use lb_userspace::testkit::lb::{Ingress, hex};

use super::{CASE_ENV, SEED_ENV, generator::Case, settings::Settings};

pub(super) fn ingress_name(i: Ingress) -> &'static str {
    match i {
        Ingress::Lo => "lo",
        Ingress::Fx0 => "fx0",
    }
}

/// The failure report: everything needed to replay the case, and a corpus file to keep it.
fn failure(
    trial: &str,
    s: &Settings,
    index: u64,
    case: &Case,
    err: anyhow::Error,
) -> anyhow::Error {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let name = format!(
        "{}-seed-{:x}-case-{index}.hex",
        trial.replace('/', "-"),
        s.seed
    );
    let path = dir.join(name);
    let mut file = format!(
        "# {trial}: seed {:#x}, case {index}, ingress {}\n# origin: {}\n",
        s.seed,
        ingress_name(case.ingress),
        case.origin
    );
    for line in format!("{err:#}").lines() {
        let _ = writeln!(file, "# {line}");
    }
    file.push_str(&hex_lines(&case.input));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, file))
        .map(|()| {
            format!(
                "saved as {}: copy it into lb-userspace/tests/fuzz-corpus/ to keep it as a \
                 regression input",
                path.display()
            )
        })
        .unwrap_or_else(|e| format!("(could not save it under {}: {e})", dir.display()));
    anyhow::anyhow!(
        "case {index} (seed {seed:#x}, ingress {ingress}) failed: {err:#}\n\
         origin: {origin}\n\
         input ({len} bytes): {hex}\n\
         replay: {SEED_ENV}={seed:#x} {CASE_ENV}={index} cargo test -p lb-userspace --test \
         dataplane -- {trial} --exact\n\
         {saved}",
        seed = s.seed,
        ingress = ingress_name(case.ingress),
        origin = case.origin,
        len = case.input.len(),
        hex = hex(&case.input),
    )
}

fn hex_lines(b: &[u8]) -> String {
    let mut s = String::new();
    for chunk in b.chunks(32) {
        s.push_str(&hex(chunk));
        s.push('\n');
    }
    s
}

/// The run's failures. Normally the first ends the run; with `SHEAVE_FUZZ_KEEP_GOING=1` the run
/// goes on and reports the first case of each distinct kind (input class and innermost error,
/// numbers aside) at the end: for triage when a change breaks several things at once.
pub(super) struct Failures<'a> {
    trial: &'static str,
    settings: &'a Settings,
    /// Kind -> (how many, the first one's report).
    kinds: BTreeMap<String, (u64, String)>,
}

impl<'a> Failures<'a> {
    pub(super) fn new(trial: &'static str, settings: &'a Settings) -> Failures<'a> {
        Failures {
            trial,
            settings,
            kinds: BTreeMap::new(),
        }
    }

    pub(super) fn record(
        &mut self,
        class: &str,
        index: u64,
        case: &Case,
        e: anyhow::Error,
    ) -> Result<()> {
        let root: String = e
            .root_cause()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let kind = format!("{class}: {root}");
        if let Some((n, _)) = self.kinds.get_mut(&kind) {
            *n += 1;
            return Ok(());
        }
        let report = failure(self.trial, self.settings, index, case, e);
        if !self.settings.keep_going {
            return Err(report);
        }
        self.kinds.insert(kind, (1, format!("{report:#}")));
        Ok(())
    }

    pub(super) fn finish(self) -> Result<()> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        let mut s = format!("{} kinds of failure:\n", self.kinds.len());
        for (kind, (n, first)) in &self.kinds {
            let _ = writeln!(s, "\n=== {n} x {kind}\n{first}");
        }
        bail!(s)
    }
}

/// Counts of (class of input, what happened), printed after a verbose run and checked for
/// coverage: a generator that stopped reaching some path should fail loudly, not pass quietly.
#[derive(Default)]
pub(super) struct Tally {
    counts: BTreeMap<String, u64>,
}

impl Tally {
    pub(super) fn add(&mut self, class: &str, outcome: &str) {
        *self
            .counts
            .entry(format!("{class} -> {outcome}"))
            .or_default() += 1;
    }

    pub(super) fn count(&self, pred: impl Fn(&str) -> bool) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v)
            .sum()
    }

    pub(super) fn require(&self, what: &[&str]) -> Result<()> {
        for w in what {
            ensure!(
                self.count(|k| k.contains(w)) > 0,
                "coverage: no case was `{w}` (the generators no longer reach it)\n{}",
                self.table()
            );
        }
        Ok(())
    }

    pub(super) fn table(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.counts {
            let _ = writeln!(s, "  {v:>9}  {k}");
        }
        s
    }
}

pub(super) fn summary(trial: &str, s: &Settings, n: u64, start: Instant, tally: &Tally) {
    if !s.verbose {
        return;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{trial}: {n} packets in {secs:.1} s ({:.0} packets/s), seed {:#x}\n{}",
        n as f64 / secs.max(1e-9),
        s.seed,
        tally.table()
    );
}
