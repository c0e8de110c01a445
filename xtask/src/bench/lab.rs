//! The `lab` section: connections per second, iperf3 throughput and CPU cost per connection
//! through Sheave versus HAProxy (Debian's 2.6, TCP mode), in the same network-namespace lab on
//! the same CPUs, and the client talking to the backends without an LB as the reference.
//!
//! One lab (client, lb, 3 backends), three setups one after the other, each measured `trials`
//! times the same way (see `meter.rs` for how CPU is counted):
//! - `direct`: the client connects to the backends' own addresses;
//! - `sheave`: the end-to-end tests' deployment, plus a VIP on port 5201 for iperf3;
//! - `haproxy`: HAProxy on the lb, bound to the VIP, round robin over the backends.
//!
//! iperf3 goes to the first backend only, in every setup: an iperf3 test is a control
//! connection plus one per stream, and all must reach the same server, while Sheave spreads
//! connections by their 5-tuples.
//!
//! Teardown is by guards, innermost first, on success, failure and Ctrl-C alike: each setup's
//! servers and LB go when its function returns, then the lab (namespaces, logs).

mod bpf;
mod cpu;
mod haproxy;
mod load;
mod meter;
mod report;
mod servers;
mod tools;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sheave_tests::deploy::{self, Deployment};
use sheave_tests::lab::{self, Host, Lab, VIP_PORT, VIP4};

use crate::signals;
use bpf::Prog;
use haproxy::Haproxy;
use meter::{Kind, Meter, Source};
use report::Runs;
use servers::{FullChecksums, IPERF_PORT};
use tools::Versions;

const BACKENDS: usize = 3;

pub struct Options {
    /// Connections per run.
    pub connections: usize,
    /// Runs of each measurement per setup.
    pub trials: usize,
}

pub fn run(opts: &Options) -> Result<Value> {
    let versions = tools::ensure()?;
    for program in ["sheaved", "sheave", "sheave-lab-http", "sheave-lab-client"] {
        lab::bin_path(program).context("the lab benchmark needs the workspace's binaries")?;
    }
    signals::check()?;
    eprintln!("  creating a lab ({BACKENDS} backends)");
    let lab = Lab::create("lab", BACKENDS).context("creating the lab")?;
    let outcome = measure(&lab, opts, &versions);
    if outcome.is_err() && !signals::interrupted() {
        // The logs go with the lab; show them while they exist.
        lab.print_logs();
    }
    eprintln!("  tearing down");
    let cleanup = lab.teardown();
    signals::check()?;
    let figures = outcome?;
    cleanup.context("the lab benchmark ran but removing its lab failed")?;
    Ok(figures)
}

fn measure(lab: &Lab, opts: &Options, versions: &Versions) -> Result<Value> {
    servers::tune(lab)?;
    let _iperf = servers::iperf(&lab.backends()[0])?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let direct = direct(lab, opts)?;
    let sheave = sheave(lab, opts)?;
    let haproxy = haproxy(lab, opts, versions, threads)?;

    let head = format!(
        "Lab throughput: {BACKENDS} backends, {threads} CPUs shared by everything; HTTP: {} \
         connections per run,\n  {} in flight, one request each; iperf3: -P {} -t {} to one \
         backend; medians of {} runs",
        opts.connections,
        load::CONCURRENCY,
        load::IPERF_STREAMS,
        load::IPERF_SECONDS,
        opts.trials
    );
    println!("{}", report::table(&[&direct, &sheave, &haproxy], &head));
    let (d, s, h) = (direct.summary(), sheave.summary(), haproxy.summary());
    Ok(json!({
        "backends": BACKENDS,
        "cpus": threads,
        "connections_per_run": opts.connections,
        "concurrency": load::CONCURRENCY,
        "trials": opts.trials,
        "iperf": { "streams": load::IPERF_STREAMS, "seconds": load::IPERF_SECONDS, "backends": 1 },
        "haproxy": versions.haproxy,
        "iperf3": versions.iperf3,
        "mtu": { "client": lab::CLIENT_MTU, "lan": lab::LAN_MTU },
        "setups": {
            "direct": direct.to_json(&d),
            "sheave": sheave.to_json(&d),
            "haproxy": haproxy.to_json(&d),
        },
        "sheave_over_haproxy": report::ratios(&d, &s, &h),
        "notes": report::NOTES.trim(),
    }))
}

/// The client straight to the backends: what the lab costs without an LB.
fn direct(lab: &Lab, opts: &Options) -> Result<Runs> {
    let _http = servers::http(lab)?;
    let targets: Vec<SocketAddr> = lab
        .backends()
        .iter()
        .map(|b| b.socket(false, VIP_PORT))
        .collect();
    let first = IpAddr::V4(lab.backends()[0].v4);
    let mut runs = Runs {
        key: "direct",
        label: "direct (no LB)".into(),
        ..Runs::default()
    };
    trials(
        &mut runs,
        lab.client(),
        &Meter::default(),
        &targets,
        first,
        opts,
    )?;
    Ok(runs)
}

fn sheave(lab: &Lab, opts: &Options) -> Result<Runs> {
    let d = Deployment::start_with_config(lab, &sheave_config(lab))
        .context("deploying Sheave in the lab")?;
    let measured = sheave_trials(lab, &d, opts);
    let stopped = d.stop();
    let runs = measured?;
    stopped.context("stopping Sheave")?;
    Ok(runs)
}

fn sheave_trials(lab: &Lab, d: &Deployment, opts: &Options) -> Result<Runs> {
    let _checksums = FullChecksums::on(lab)?;
    let _stats = bpf::enable_stats()?;
    let lb = lab.lb();
    let mut sources = vec![
        Source {
            name: "sheaved".into(),
            on_lb: true,
            kind: Kind::Process(d.sheaved().pid()),
        },
        xdp("xdp sheave-lb", true, &lb.netns, &lb.iface)?,
        // veth hands XDP_TX frames on only to a peer running XDP: part of the lab, not the LB.
        xdp(
            "xdp pass (switch port)",
            false,
            lab.switch_netns(),
            &format!("p-{}", lb.name),
        )?,
    ];
    for b in lab.backends() {
        sources.push(xdp(
            &format!("xdp decap {}", b.name),
            false,
            &b.netns,
            &b.iface,
        )?);
    }
    let mut runs = Runs {
        key: "sheave",
        label: "Sheave (XDP, DSR)".into(),
        ..Runs::default()
    };
    let vip = [SocketAddr::from((VIP4, VIP_PORT))];
    trials(
        &mut runs,
        lab.client(),
        &Meter::new(sources),
        &vip,
        VIP4.into(),
        opts,
    )?;
    Ok(runs)
}

fn xdp(name: &str, on_lb: bool, netns: &str, iface: &str) -> Result<Source> {
    Ok(Source {
        name: name.into(),
        on_lb,
        kind: Kind::Xdp(Prog::attached_xdp(netns, iface)?),
    })
}

/// The tests' configuration plus a VIP for iperf3 with the first backend alone.
fn sheave_config(lab: &Lab) -> String {
    let mut s = deploy::lb_config(lab);
    let _ = write!(
        s,
        "\n[[vip]]\naddress = \"{VIP4}\"\nport = {IPERF_PORT}\nprotocol = \"tcp\"\n\
         [[vip.backend]]\naddress = \"{}\"\n",
        lab.backends()[0].v4
    );
    s
}

fn haproxy(lab: &Lab, opts: &Options, v: &Versions, threads: usize) -> Result<Runs> {
    let _http = servers::http(lab)?;
    let h = Haproxy::start(lab, threads)?;
    let meter = Meter::new(vec![Source {
        name: "haproxy".into(),
        on_lb: true,
        kind: Kind::Process(h.pid()),
    }]);
    let mut runs = Runs {
        key: "haproxy",
        label: format!(
            "{} (TCP)",
            v.haproxy.split('-').next().unwrap_or(&v.haproxy)
        ),
        ..Runs::default()
    };
    let vip = [SocketAddr::from((VIP4, VIP_PORT))];
    trials(&mut runs, lab.client(), &meter, &vip, VIP4.into(), opts)?;
    Ok(runs)
}

/// `opts.trials` rounds of: a connections run, iperf3 up, iperf3 down; a line for each.
fn trials(
    runs: &mut Runs,
    client: &Host,
    meter: &Meter,
    targets: &[SocketAddr],
    iperf_to: IpAddr,
    opts: &Options,
) -> Result<()> {
    let n = opts.trials;
    for t in 1..=n {
        let (c, u) = meter.measure(|| load::connections(client, targets, opts.connections))?;
        if c.ok == 0 {
            bail!("{}: no connection succeeded: {:?}", runs.label, c.errors);
        }
        let lb = u
            .lb_s
            .map(|s| format!("; LB CPU {:.1} ms", s * 1e3))
            .unwrap_or_default();
        eprintln!(
            "  {:<8} {t}/{n}: {:>6.0} conn/s, {} failed, {:.1} s; machine busy {:.1} CPU-s \
             (background {:.1}){lb}",
            runs.key,
            c.per_s(),
            c.failed + c.not_attempted,
            c.elapsed.as_secs_f64(),
            u.busy_s,
            u.background_s,
        );
        runs.conns.push((c, u));
        let (up, uu) = meter.measure(|| load::iperf(client, iperf_to, IPERF_PORT, false))?;
        let (down, ud) = meter.measure(|| load::iperf(client, iperf_to, IPERF_PORT, true))?;
        eprintln!(
            "  {:<8} {t}/{n}: iperf3 {:.2} Gbps up ({} retransmits), {:.2} Gbps down ({})",
            runs.key, up.gbps, up.retransmits, down.gbps, down.retransmits
        );
        runs.up.push((up, uu));
        runs.down.push((down, ud));
    }
    Ok(())
}
