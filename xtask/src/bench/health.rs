//! The `health` section: how fast new connections move off a backend whose server dies, and
//! what a drain costs, with the scenarios of the lab tests (`sheave_tests::health`), so the
//! figures are those of what the tests assert.
//!
//! One lab (client, lb, 3 backends), `sheaved` (release) with TCP health checks at their
//! defaults on the IPv4 VIP. Failover, `runs` times: streams to b2 and b3, a new connection
//! every 15 ms, b1's server SIGKILLed at T0; the failover time is the start of the last
//! connection after T0 that failed or reached b1, minus T0. b1's server is restarted and seen
//! `up` again before the next run.
//!
//! The drain comes first: three 10 s streams to b1, `sheave backend drain --timeout 60s` 2 s
//! in, new connections all along, until b1 leaves the VIP; then b1 is added back for the
//! failovers. In that order the drain is measured on its own: connections a crash killed leave
//! flow-table entries behind that the load balancer never saw end (the backend's host refused
//! or reset them straight to the client), and those are the subject of a lab test
//! (`drain_of_a_recovered_backend_...`), not of this figure.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use sheave_tests::deploy::Deployment;
use sheave_tests::health::drain::{self, DrainOpts, DrainRun};
use sheave_tests::health::failover::{self, FailoverOpts, FailoverRun};
use sheave_tests::health::{Sheave, Vip, toml};
use sheave_tests::lab::{Lab, VIP_PORT, VIP4};

use super::stats::{self, Samples};
use crate::signals;

const BACKENDS: usize = 3;
const VIP: Vip = Vip(std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    VIP4, VIP_PORT,
)));
/// The checks, as configured (`toml::tcp_checked`: the defaults).
const CHECKS: &str = "tcp, defaults (interval 500ms, fast_interval 100ms, timeout 300ms, \
                      jitter 50ms, rise 2, fall 3)";
/// Backends coming back (rise checks) or starting: well within this.
const UP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(runs: usize) -> Result<Value> {
    crate::session::on_deployment(
        "health benchmark",
        BACKENDS,
        |lab| Some(toml::tcp_checked(lab, VIP)),
        |lab, d| measure(lab, d, runs),
    )
}

fn measure(lab: &Lab, d: &mut Deployment, runs: usize) -> Result<Value> {
    let sheave = Sheave::new(lab)?;
    sheave.wait_all_up(VIP, UP_TIMEOUT)?;
    // The drain first, on a VIP with no crash behind it (see the module doc), then b1 back.
    let drain_opts = DrainOpts::new(VIP);
    let dr = drain::run(lab, &sheave, &drain_opts)?;
    eprintln!(
        "  drain: {} of {} streams broken; removed {} after the command",
        dr.broken().len(),
        dr.streams.len(),
        secs(dr.drain_to_removal())
    );
    let b1 = lab.backends()[0].v4.to_string();
    if sheave.is_member(VIP, lab.backends()[0].v4.into())? {
        // The drain did not finish within its bound: cancel it, so b1 serves the failovers.
        sheave.run(&["backend", "undrain", &VIP.cli(), &b1])?;
    } else {
        sheave.run(&["backend", "add", &VIP.cli(), &b1])?;
    }
    sheave.wait_all_up(VIP, UP_TIMEOUT)?;

    let opts = FailoverOpts {
        survivors_per_backend: 2,
        ..FailoverOpts::new(VIP)
    };
    let mut failovers = Vec::new();
    for i in 1..=runs {
        signals::check()?;
        let r = failover::run(lab, d, &opts)?;
        eprintln!(
            "  failover {i}/{runs}: {} ms; after the kill {} failed, {} reached b1; {} of {} \
             streams broken",
            stats::ms(r.failover()),
            failed_after_kill(&r),
            r.timeline.since(r.t0).filter(|c| c.reached("b1")).count(),
            r.broken_survivors().len(),
            r.survivors.len()
        );
        failovers.push(r);
        d.start_server(lab, opts.victim)?;
        sheave.wait_all_up(VIP, UP_TIMEOUT)?;
    }
    let times = Samples::new(failovers.iter().map(FailoverRun::failover).collect());
    let failed: Vec<usize> = failovers.iter().map(failed_after_kill).collect();
    let broken: Vec<usize> = failovers
        .iter()
        .map(|r| r.broken_survivors().len())
        .collect();
    println!("{}", table(&opts, &times, &failovers, &drain_opts, &dr));
    Ok(json!({
        "vip": VIP.name(),
        "backends": BACKENDS,
        "health_check": CHECKS,
        "failover": {
            "runs": runs,
            "connection_interval_ms": stats::ms_f(opts.interval),
            "time": times.to_json(),
            "failed_after_kill": failed,
            "streams_broken": broken,
        },
        "drain": {
            "streams": dr.streams.len(),
            "stream_seconds": drain_opts.stream_for.as_secs_f64(),
            "drain_after_seconds": drain_opts.drain_after.as_secs_f64(),
            "timeout_seconds": drain_opts.timeout.as_secs_f64(),
            "streams_broken": dr.broken().len(),
            "command_to_removal_ms": dr.drain_to_removal().map(stats::ms_f),
            "last_stream_end_to_removal_ms": dr.last_end_to_removal_s().map(|s| s * 1e3),
            "new_connections_to_b1_after_command": dr.victim_after_drain().len(),
            "short_connections_failed": dr.timeline.failures().count(),
        },
    }))
}

/// `1.23 s`, or `never` for a removal not seen within the scenario's bound.
fn secs(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Connections started after the kill that failed.
fn failed_after_kill(r: &FailoverRun) -> usize {
    r.timeline
        .since(r.t0)
        .filter(|c| c.outcome.is_err())
        .count()
}

fn table(
    opts: &FailoverOpts,
    times: &Samples,
    runs: &[FailoverRun],
    drain_opts: &DrainOpts,
    dr: &DrainRun,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nFailover: VIP {}, {BACKENDS} backends, TCP checks at their defaults (interval 500 ms, \
         fast 100 ms,\n  fall 3); a new connection every {} ms; b1's server SIGKILLed at T0; {} \
         runs",
        VIP.name(),
        opts.interval.as_millis(),
        runs.len()
    );
    let _ = writeln!(s, "  {:<44} {:>9} {:>9} {:>9}", "", "median", "min", "max");
    let _ = writeln!(
        s,
        "  {:<44} {:>9} {:>9} {:>9}",
        "failover time, ms",
        stats::ms(times.median()),
        stats::ms(times.min()),
        stats::ms(times.max())
    );
    let failed: Vec<String> = runs
        .iter()
        .map(|r| failed_after_kill(r).to_string())
        .collect();
    let _ = writeln!(
        s,
        "  failed connections after T0, per run: {}; long-lived streams broken: {}",
        failed.join(" "),
        runs.iter()
            .map(|r| r.broken_survivors().len())
            .sum::<usize>()
    );
    let _ = writeln!(
        s,
        "  failover time = start of the last connection after T0 that failed or reached b1, \
         minus T0"
    );
    let _ = writeln!(
        s,
        "\nDrain: {} streams to b1 for {} s, `sheave backend drain --timeout {} s` {} s in, a \
         new connection every {} ms",
        dr.streams.len(),
        drain_opts.stream_for.as_secs(),
        drain_opts.timeout.as_secs(),
        drain_opts.drain_after.as_secs(),
        drain_opts.interval.as_millis()
    );
    let _ = writeln!(
        s,
        "  {:<44} {} of {}",
        "streams broken",
        dr.broken().len(),
        dr.streams.len()
    );
    let _ = writeln!(
        s,
        "  {:<44} {}",
        "drain command -> b1 removed",
        secs(dr.drain_to_removal())
    );
    let _ = writeln!(
        s,
        "  {:<44} {}",
        "last stream end -> b1 removed",
        dr.last_end_to_removal_s()
            .map_or("never".into(), |v| format!("{v:.2} s"))
    );
    let _ = writeln!(
        s,
        "  {:<44} {}",
        "new connections to b1 after the command",
        dr.victim_after_drain().len()
    );
    let _ = writeln!(
        s,
        "  removal is seen by polling `sheave vip show` every 100 ms (figures are late by up to \
         that)"
    );
    s
}
