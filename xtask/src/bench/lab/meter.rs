//! Measuring the CPU a run costs, three ways, because no single one is both complete and
//! attributable on a shared machine:
//!
//! - the LB's own time: HAProxy's process (user + system, all threads), or Sheave's XDP program
//!   (kernel run-time statistics) plus `sheaved`'s process. Exact but partial: neither counts
//!   the kernel's receive path around it (the softirq that delivers packets to HAProxy's
//!   sockets, the veth driver work around the XDP program);
//! - the whole machine's busy time (`/proc/stat`), which counts everything, client and backends
//!   included, and other users' work too. An idle window right before each run estimates that
//!   background, which is subtracted; the no-LB run's figure then gives the LB's share;
//! - the parts recorded beside (backends' decap programs, the switch port's pass program).

use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::bpf::Prog;
use super::cpu::{self, Machine};
use crate::signals;

/// The idle window before each run that estimates other users' load.
const BACKGROUND_WINDOW: Duration = Duration::from_secs(1);

/// One place CPU time is read from.
pub struct Source {
    pub name: String,
    /// Counts as the LB host's own cost (else only recorded).
    pub on_lb: bool,
    pub kind: Kind,
}

pub enum Kind {
    Process(u32),
    Xdp(Prog),
}

impl Source {
    /// (CPU seconds, program runs) so far.
    fn read(&self) -> Result<(f64, Option<u64>)> {
        Ok(match &self.kind {
            Kind::Process(pid) => (cpu::process_s(*pid)?, None),
            Kind::Xdp(prog) => {
                let r = prog.runs()?;
                (r.ns as f64 / 1e9, Some(r.count))
            }
        })
    }
}

/// What one run cost.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub wall_s: f64,
    /// All CPUs' busy seconds over the run.
    pub busy_s: f64,
    pub softirq_s: f64,
    /// Busy seconds the idle window predicts for the run's length: other users' load.
    pub background_s: f64,
    /// The LB's own seconds; `None` without an LB.
    pub lb_s: Option<f64>,
    /// (name, seconds, program runs) per source.
    pub parts: Vec<(String, f64, Option<u64>)>,
}

impl Usage {
    /// The machine's busy seconds less the background estimate.
    pub fn net_busy_s(&self) -> f64 {
        self.busy_s - self.background_s
    }

    pub fn to_json(&self) -> Value {
        let parts: serde_json::Map<String, Value> = self
            .parts
            .iter()
            .map(|(n, s, runs)| (n.clone(), json!({ "cpu_s": s, "runs": runs })))
            .collect();
        json!({
            "wall_s": self.wall_s,
            "machine_busy_s": self.busy_s,
            "machine_softirq_s": self.softirq_s,
            "background_s": self.background_s,
            "lb_cpu_s": self.lb_s,
            "parts": parts,
        })
    }
}

/// The sources of one setup.
#[derive(Default)]
pub struct Meter {
    sources: Vec<Source>,
}

struct Reading {
    at: Instant,
    machine: Machine,
    values: Vec<(f64, Option<u64>)>,
}

impl Meter {
    pub fn new(sources: Vec<Source>) -> Meter {
        Meter { sources }
    }

    /// Runs `f` between two readings, after an idle window that measures the background.
    pub fn measure<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Usage)> {
        let background_rate = background()?;
        let before = self.read()?;
        let out = f()?;
        let after = self.read()?;
        let wall_s = (after.at - before.at).as_secs_f64();
        let (busy_s, softirq_s) = after.machine.since(&before.machine);
        let mut lb = None;
        let mut parts = Vec::new();
        for ((s, a), b) in self.sources.iter().zip(&after.values).zip(&before.values) {
            let secs = a.0 - b.0;
            if s.on_lb {
                *lb.get_or_insert(0.0) += secs;
            }
            let runs = a.1.zip(b.1).map(|(a, b)| a.saturating_sub(b));
            parts.push((s.name.clone(), secs, runs));
        }
        let usage = Usage {
            wall_s,
            busy_s,
            softirq_s,
            background_s: background_rate * wall_s,
            lb_s: lb,
            parts,
        };
        Ok((out, usage))
    }

    fn read(&self) -> Result<Reading> {
        Ok(Reading {
            at: Instant::now(),
            machine: Machine::read()?,
            values: self
                .sources
                .iter()
                .map(Source::read)
                .collect::<Result<_>>()?,
        })
    }
}

/// Busy CPU-seconds per second while the lab is idle: what others are using.
fn background() -> Result<f64> {
    signals::check()?;
    let (t0, m0) = (Instant::now(), Machine::read()?);
    thread::sleep(BACKGROUND_WINDOW);
    let (busy, _) = Machine::read()?.since(&m0);
    Ok(busy / t0.elapsed().as_secs_f64())
}
