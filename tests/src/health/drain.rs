//! The drain scenario: long-lived streams to one backend, new short connections all along, and
//! `sheave backend drain` while the streams run. What is measured: whether any stream broke,
//! whether a new connection still reached the backend after the command returned, and when the
//! backend left the VIP, relative to the command and to the end of its last stream.

use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::load::{Conn, Load, LoadOpts, Timeline};
use super::{BackendStatus, Sheave, Vip};
use crate::lab::Lab;
use crate::traffic::echo::{EchoOutcome, EchoStream};

/// How often the backend's status is read while it drains.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct DrainOpts {
    pub vip: Vip,
    /// The backend drained: an index into the lab's backends (0 is b1).
    pub victim: usize,
    /// Long-lived streams to it, each running `stream_for` from its opening.
    pub streams: usize,
    pub stream_for: Duration,
    /// When the drain command is given, after the first stream opened.
    pub drain_after: Duration,
    /// `--timeout` of the drain command.
    pub timeout: Duration,
    /// A new short connection this often, from the first stream until the removal.
    pub interval: Duration,
    /// Stop waiting for the removal this long after the command.
    pub removal_bound: Duration,
}

impl DrainOpts {
    pub fn new(vip: Vip) -> DrainOpts {
        DrainOpts {
            vip,
            victim: 0,
            streams: 3,
            stream_for: Duration::from_secs(10),
            drain_after: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(20),
            removal_bound: Duration::from_secs(45),
        }
    }
}

/// What one run saw.
#[derive(Debug, Clone)]
pub struct DrainRun {
    pub victim: String,
    pub victim_addr: IpAddr,
    pub streams: Vec<EchoOutcome>,
    pub cmd_start: Instant,
    pub cmd_returned: Instant,
    /// The victim in `sheave status` at each poll after the command (`None`: not listed).
    pub statuses: Vec<(Instant, Option<BackendStatus>)>,
    /// The first poll at which `sheave vip show` no longer listed it.
    pub removed: Option<Instant>,
    pub timeline: Timeline,
}

impl DrainRun {
    pub fn broken(&self) -> Vec<&EchoOutcome> {
        self.streams.iter().filter(|o| !o.intact()).collect()
    }

    pub fn last_stream_end(&self) -> Option<Instant> {
        self.streams.iter().map(|o| o.ended).max()
    }

    /// From the command's return to the removal.
    pub fn drain_to_removal(&self) -> Option<Duration> {
        Some(self.removed? - self.cmd_returned)
    }

    /// From the end of the last stream to the removal, in seconds; negative if the backend was
    /// removed while a stream still ran.
    pub fn last_end_to_removal_s(&self) -> Option<f64> {
        let (removed, end) = (self.removed?, self.last_stream_end()?);
        Some(if removed >= end {
            (removed - end).as_secs_f64()
        } else {
            -(end - removed).as_secs_f64()
        })
    }

    /// New connections started after the command returned that the victim answered.
    pub fn victim_after_drain(&self) -> Vec<&Conn> {
        self.timeline
            .since(self.cmd_returned)
            .filter(|c| c.reached(&self.victim))
            .collect()
    }

    /// Statuses seen while it drained with flows left.
    pub fn draining_with_flows(&self) -> Vec<&BackendStatus> {
        self.statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| s.state == "draining" && s.flows.is_some_and(|f| f > 0))
            .collect()
    }
}

/// Runs the scenario once; the victim must be a serving member of the VIP. Afterwards it is
/// no longer a member (if the drain worked): `sheave backend add` brings it back.
pub fn run(lab: &Lab, sheave: &Sheave, opts: &DrainOpts) -> Result<DrainRun> {
    let client = lab.client();
    let Some(victim) = lab.backends().get(opts.victim) else {
        bail!("no backend {}", opts.victim);
    };
    let addr = victim.addr(opts.vip.0.is_ipv6());
    let echo = super::echo_opts(opts.stream_for);
    let mut streams = Vec::new();
    for _ in 0..opts.streams {
        let s = EchoStream::open_to(client, opts.vip.0, echo, &[victim.name.as_str()], 40)
            .with_context(|| format!("a long-lived stream to {}", victim.name))?;
        streams.push(s);
    }
    let first = streams.first().map_or_else(Instant::now, |s| s.opened);
    let load = Load::start(
        client,
        LoadOpts {
            interval: opts.interval,
            ..LoadOpts::new(opts.vip.0, opts.stream_for + opts.removal_bound)
        },
    );
    thread::sleep((first + opts.drain_after).saturating_duration_since(Instant::now()));
    let cmd_start = Instant::now();
    let timeout = super::duration_arg(opts.timeout);
    sheave.run(&[
        "backend",
        "drain",
        &opts.vip.cli(),
        &addr.to_string(),
        "--timeout",
        &timeout,
    ])?;
    let cmd_returned = Instant::now();

    let mut statuses = Vec::new();
    let mut removed = None;
    while cmd_returned.elapsed() < opts.removal_bound {
        let now = Instant::now();
        statuses.push((now, sheave.backend(opts.vip, addr)?));
        if !sheave.is_member(opts.vip, addr)? {
            removed = Some(now);
            break;
        }
        thread::sleep(POLL.saturating_sub(now.elapsed()));
    }
    let streams: Vec<EchoOutcome> = streams.into_iter().map(EchoStream::finish).collect();
    // A little load after the removal too: nothing may reach the removed backend.
    thread::sleep(Duration::from_millis(500));
    load.stop();
    let timeline = load.finish()?;
    Ok(DrainRun {
        victim: victim.name.clone(),
        victim_addr: addr,
        streams,
        cmd_start,
        cmd_returned,
        statuses,
        removed,
        timeline,
    })
}
