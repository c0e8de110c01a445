//! `cargo xtask bench [SECTION...]`: benchmarks, not tests. The machine is shared and noisy, so
//! each section prints a table of percentiles and records its raw numbers for later comparison;
//! nothing is asserted about timings.
//!
//! Sections (all by default, in this order):
//! - `maglev`: ring build time for N backends at M = 65537, balance, weights, and the flows
//!   moved when a backend goes (the release-built `bench-control` example; no root needed);
//! - `api`: the time from an API call to the map update, in a lab (root);
//! - `packet`: ns per packet through the XDP program by BPF_PROG_TEST_RUN, net of an empty
//!   program, per scenario (the release-built `bench-packet` example; root);
//! - `lab`: connections/s, iperf3 Gbps and CPU per connection through Sheave versus HAProxy in
//!   a lab, with the client talking to the backends directly as the reference (root; installs
//!   haproxy and iperf3 with apt-get if missing);
//! - `health`: failover time when a backend's server dies (median/min/max of `--failovers`
//!   runs) and a connection-preserving drain (streams broken, time to removal), in a lab
//!   (root).
//!
//! A new section is a [`Section`] variant, a module, and a line in [`run_section`]. Everything
//! runs release builds: these are the figures an operator would see.

mod api;
mod health;
mod http;
mod lab;
mod maglev;
mod packet;
mod record;
mod stats;
mod vipmap;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cmd::{self, Workspace};
use crate::setup::{self, BuildEnv};
use crate::signals;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure [default: all].
    #[arg(value_enum, value_name = "SECTION")]
    sections: Vec<Section>,
    /// Do not run `cargo xtask setup` first (use what an earlier setup recorded).
    #[arg(long)]
    skip_setup: bool,
    /// Do not build first (use what target/release holds).
    #[arg(long)]
    no_build: bool,
    /// maglev: timed ring builds per case.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// api: timed calls per kind of call and client.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    calls: u32,
    /// packet: timed BPF_PROG_TEST_RUN calls per trial.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    packets: u32,
    /// packet: trials per case (the table shows the median).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=101))]
    trials: u32,
    /// lab: connections per run (aim for runs of 5-10 s).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    connections: u32,
    /// lab: runs of each measurement per setup (the table shows the median).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=21))]
    lab_trials: u32,
    /// health: failover runs (a fresh kill of the same backend each time).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    failovers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Section {
    /// Maglev ring build time and disruption (no root needed).
    Maglev,
    /// API call to map update in a lab (needs root).
    Api,
    /// ns per packet through the XDP program (needs root).
    Packet,
    /// Connections/s, Gbps and CPU through Sheave versus HAProxy in a lab (needs root).
    Lab,
    /// Failover time and drain in a lab (needs root).
    Health,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Maglev => "maglev",
            Section::Api => "api",
            Section::Packet => "packet",
            Section::Lab => "lab",
            Section::Health => "health",
        }
    }

    fn needs_root(self) -> bool {
        matches!(
            self,
            Section::Api | Section::Packet | Section::Lab | Section::Health
        )
    }

    /// Whether it runs the workspace's programs (sheaved, sheave, the lab's servers).
    fn needs_bins(self) -> bool {
        matches!(self, Section::Api | Section::Lab | Section::Health)
    }

    /// The file under `target/bench/` its figures go to: one per kind of benchmark, so that a
    /// run of one section keeps the others' last figures beside it.
    fn record_file(self) -> &'static str {
        match self {
            Section::Maglev | Section::Api => "control.json",
            Section::Packet => "packet.json",
            Section::Lab => "lab.json",
            Section::Health => "health.json",
        }
    }
}

impl Args {
    /// The sections to run, in a fixed order whatever order they were given in.
    fn sections(&self) -> Vec<Section> {
        let mut s = if self.sections.is_empty() {
            vec![
                Section::Maglev,
                Section::Api,
                Section::Packet,
                Section::Lab,
                Section::Health,
            ]
        } else {
            self.sections.clone()
        };
        s.sort();
        s.dedup();
        s
    }

    /// Refuses early, before anything slow, when a chosen section needs root.
    pub fn check_root(&self) -> Result<()> {
        let rooted: Vec<&str> = self
            .sections()
            .into_iter()
            .filter(|s| s.needs_root())
            .map(Section::name)
            .collect();
        if !rooted.is_empty() && !cmd::is_root() {
            bail!(
                "`cargo xtask bench {}` must run as root: it creates network namespaces and \
                 attaches XDP programs. Try `sudo -E env \"PATH=$PATH\" cargo xtask bench`, or \
                 `cargo xtask bench maglev` alone, which needs no root",
                rooted.join(" ")
            );
        }
        Ok(())
    }
}

/// Where the benchmarked programs are: the release build, not the tests' debug one.
pub fn bin_dir(ws: &Workspace) -> PathBuf {
    ws.target.join("release")
}

pub fn run(ws: &Workspace, args: &Args) -> Result<()> {
    let start = Instant::now();
    let sections = args.sections();
    let env = setup::run_or_load(ws, args.skip_setup)?;
    if !args.no_build {
        build(ws, &env, &sections)?;
    }
    let mut done = Vec::new();
    for s in sections {
        signals::check()?;
        eprintln!("== bench: {}", s.name());
        let t = Instant::now();
        let figures = run_section(ws, args, s)?;
        let file = record::save(ws, s.record_file(), s.name(), figures)?;
        eprintln!(
            "  ok    {} in {}; figures in {}",
            s.name(),
            cmd::human(t.elapsed()),
            file.display()
        );
        done.push(s.name());
    }
    eprintln!(
        "xtask bench: {} done in {}",
        done.join(", "),
        cmd::human(start.elapsed())
    );
    Ok(())
}

fn run_section(ws: &Workspace, args: &Args, s: Section) -> Result<serde_json::Value> {
    match s {
        Section::Maglev => maglev::run(ws, args.runs),
        Section::Api => api::run(args.calls as usize),
        Section::Packet => packet::run(ws, args.packets, args.trials),
        Section::Lab => lab::run(&lab::Options {
            connections: args.connections as usize,
            trials: args.lab_trials as usize,
        }),
        Section::Health => health::run(args.failovers as usize),
    }
}

/// One cargo run for everything the chosen sections need: two would only queue on cargo's lock
/// and recheck the same dependency graph.
fn build(ws: &Workspace, env: &BuildEnv, sections: &[Section]) -> Result<()> {
    eprintln!("== bench: building (release)");
    let mut c = ws.cargo(["build", "--release"]);
    if sections.iter().any(|s| s.needs_bins()) {
        // Not xtask itself: it is running already, from the dev profile.
        c.args(["--workspace", "--exclude", "xtask", "--bins"]);
    } else {
        c.args(["--package", "lb-userspace"]);
    }
    if sections.contains(&Section::Maglev) {
        c.args(["--example", maglev::EXAMPLE]);
    }
    if sections.contains(&Section::Packet) {
        // The example times the bench-only entry points, which only the bench object has.
        c.args(["--example", packet::EXAMPLE])
            .args(["--features", "lb-userspace/bench"]);
    }
    env.apply(&mut c);
    cmd::run(&mut c).map(drop)
}
