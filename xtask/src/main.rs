//! Sheave's developer commands, run as `cargo xtask <command>` (alias in .cargo/config.toml):
//!
//! - `setup`: install or check the eBPF toolchain (bpf-linker, nightly + rust-src) and the
//!   lab's system packages;
//! - `test`: setup, fmt, clippy, build, then every test, with a summary line (CI runs this);
//! - `demo`: Sheave balancing two VIPs in a network-namespace lab, with a table per VIP;
//! - `bench`: benchmarks (Maglev build time and disruption, API call to map update, ns per packet,
//!   lab throughput against HAProxy), printed as tables and recorded under `target/bench/`;
//! - `fuzz`: the long fuzz run of the XDP programs (a million packets, a fresh seed).

mod bench;
mod cmd;
mod demo;
mod fuzz;
mod session;
mod setup;
mod signals;
mod test;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Sheave's developer commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing of the eBPF toolchain and the lab's tools (fast when present).
    Setup,
    /// Run setup, cargo fmt --check, clippy, build, and every test (needs root).
    Test(test::Args),
    /// Show Sheave balancing connections in a network-namespace lab (needs root).
    Demo(demo::Args),
    /// Benchmarks: Maglev ring build and disruption, API call to map update (`api` needs root).
    Bench(bench::Args),
    /// Long fuzz run: a million random and mutated packets through the XDP programs (needs root).
    Fuzz(fuzz::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<signals::Interrupted>() => {
            eprintln!("xtask: interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    // Before anything else, so that a non-root user hears why at once.
    match &cli.command {
        Command::Test(_) => test::check_root()?,
        Command::Demo(_) => demo::check_root()?,
        Command::Bench(args) => args.check_root()?,
        Command::Fuzz(_) => fuzz::check_root()?,
        Command::Setup => {}
    }
    // SAFETY: no thread has been started yet (nothing before this spawns one).
    unsafe { cmd::prepare_path() };
    let ws = cmd::Workspace::locate()?;
    if std::env::var_os(cmd::BIN_DIR_ENV).is_none() {
        // Benchmarks run release builds: those are the figures an operator would see.
        let dir = match &cli.command {
            Command::Bench(_) => bench::bin_dir(&ws),
            _ => ws.bin_dir(),
        };
        // SAFETY: still single-threaded: locate() only ran a child process to completion.
        // Every child, and sheave-tests' `bin_path` in this process, then looks in the
        // workspace's target directory for sheaved, sheave and the lab's programs.
        unsafe { std::env::set_var(cmd::BIN_DIR_ENV, dir) };
    }
    signals::install()?;
    match &cli.command {
        Command::Setup => setup::run(&ws).map(|env| {
            if let Some(line) = env.export_line() {
                println!("{line}");
            }
        }),
        Command::Test(args) => test::run(&ws, args),
        Command::Demo(args) => demo::run(&ws, args),
        Command::Bench(args) => bench::run(&ws, args),
        Command::Fuzz(args) => fuzz::run(&ws, args),
    }
}
