//! `cargo xtask demo`: Sheave in a lab of network namespaces. sheaved balances two VIPs (IPv4
//! and IPv6) over the backends, each backend decapsulates with `sheave decap` and serves HTTP,
//! and the client's connections show how the load spreads.
//!
//! The deployment is `sheave_tests::deploy`, the one the end-to-end tests use, so the demo
//! cannot drift from what is tested. Everything is torn down in one place, in the same order on
//! success, failure and Ctrl-C: the deployment (decap programs, pass-through program, sheaved,
//! servers), then the lab.

mod report;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sheave_tests::deploy::Deployment;
use sheave_tests::lab::{self, ClientOpts, ClientReport, Lab, VIP_PORT, VIP4, VIP6};

use crate::cmd::{self, Workspace};
use crate::setup;
use crate::signals;

/// Connections the client keeps in flight: enough to be quick, few enough for the lab server.
const CONCURRENCY: usize = 8;
/// Per connection: connect, request and the whole response.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on each client run; a working lab needs well under a second for 300 connections.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// How often the main thread looks for a signal while the client runs.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not run `cargo xtask setup` first (use what an earlier setup recorded).
    #[arg(long)]
    skip_setup: bool,
    /// Do not run `cargo build --workspace --bins` first.
    #[arg(long)]
    no_build: bool,
    /// Connections to make to each VIP.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Backends in the lab.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=64))]
    backends: u8,
}

/// Refuses early, before anything slow, when not root.
pub fn check_root() -> Result<()> {
    if !cmd::is_root() {
        bail!(
            "`cargo xtask demo` must run as root: it creates network namespaces and attaches XDP \
             programs. Try `sudo -E env \"PATH=$PATH\" cargo xtask demo`"
        );
    }
    Ok(())
}

pub fn run(ws: &Workspace, args: &Args) -> Result<()> {
    let env = setup::run_or_load(ws, args.skip_setup)?;
    if !args.no_build {
        eprintln!("== demo: building");
        let mut c = ws.cargo(["build", "--workspace", "--bins"]);
        env.apply(&mut c);
        cmd::run(&mut c)?;
    }
    for program in ["sheaved", "sheave", "sheave-lab-http", "sheave-lab-client"] {
        lab::bin_path(program).context("the demo needs the workspace's binaries")?;
    }
    signals::check()?;

    eprintln!("== demo: creating the lab ({} backends)", args.backends);
    // A Ctrl-C here reaches the `ip` commands too; create() then fails and removes what it made.
    let lab = Lab::create("demo", args.backends.into()).context("creating the lab")?;
    eprintln!("  lab {} (logs in {})", lab.prefix(), lab.dir().display());

    eprintln!(
        "== demo: deploying sheaved on {} ({}, native XDP), decap and HTTP on {} backends",
        lab.lb().name,
        lab.lb().iface,
        lab.backends().len()
    );
    // Interrupted half-way, start() fails and its own cleanup removes what it attached.
    let deployment = Deployment::start(&lab).context("deploying Sheave in the lab");
    let outcome = match &deployment {
        Ok(d) => {
            if let Some(ready) = d.sheaved().log().lines().find(|l| l.contains("ready:")) {
                eprintln!("  ok    {}", ready.trim());
            }
            Some(measure(&lab, args.connections as usize))
        }
        Err(_) => None,
    };
    let all_ok = matches!(&outcome, Some(Ok(r)) if report::all_ok(r));
    if !all_ok && !signals::interrupted() {
        // The logs go with the lab; show them while they exist.
        lab.print_logs();
    }

    eprintln!("== demo: tearing down");
    let (deployed, cleaned) = crate::session::tear_down(lab, deployment);
    if cleaned {
        eprintln!("  ok    lab removed");
    }

    // A Ctrl-C kills whatever command was running, so whatever failed, that is the news.
    signals::check()?;
    deployed?;
    let reports = outcome.expect("deployed, so measured")?;
    println!("{}", report::verdict(&reports));
    if !cleaned {
        bail!("the demo ran but cleaning up failed (see above)");
    }
    if !report::all_ok(&reports) {
        bail!("some connections failed");
    }
    Ok(())
}

/// Runs the lab client against each VIP and prints a table per VIP as its results come in.
///
/// The client runs on a helper thread so that this one can notice a SIGTERM sent to xtask alone
/// and start cleaning up; the lab's teardown then kills the client. (A terminal's Ctrl-C kills
/// the client directly, which ends the helper too.)
fn measure(lab: &Lab, count: usize) -> Result<Vec<ClientReport>> {
    let targets = [format!("{VIP4}:{VIP_PORT}"), format!("[{VIP6}]:{VIP_PORT}")];
    eprintln!(
        "== demo: {count} connections to each of {}",
        targets.join(" and ")
    );
    let opts = ClientOpts {
        count,
        concurrency: CONCURRENCY,
        timeout: CONNECT_TIMEOUT,
        deadline: CLIENT_DEADLINE,
        ..ClientOpts::default()
    };
    let client = lab.client().clone();
    let (tx, rx) = mpsc::channel();
    let jobs = targets.clone();
    thread::spawn(move || {
        for target in jobs {
            let r = client.run_client_with(&target, &opts);
            // The receiver is gone once the demo stopped waiting: run nothing more.
            if tx.send((target, r)).is_err() {
                return;
            }
        }
    });
    let backends: Vec<String> = lab.backends().iter().map(|b| b.name.clone()).collect();
    let mut reports = Vec::new();
    while reports.len() < targets.len() {
        match rx.recv_timeout(POLL) {
            Ok((target, r)) => {
                signals::check()?;
                let r = r.with_context(|| format!("running the lab client against {target}"))?;
                println!("{}", report::table(&r, &backends));
                reports.push(r);
            }
            Err(RecvTimeoutError::Timeout) => signals::check()?,
            Err(RecvTimeoutError::Disconnected) => bail!("the lab client's thread died"),
        }
    }
    Ok(reports)
}
