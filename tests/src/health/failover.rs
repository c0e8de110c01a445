//! The failover scenario: a steady stream of short connections to a VIP with TCP health
//! checks, long-lived streams to the backends that stay, and at T0 one backend's server dies.
//! What is measured is the client's view: how long after T0 new connections still failed or
//! reached the dead backend.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Vip;
use super::load::{Conn, Load, LoadOpts, Timeline};
use crate::deploy::Deployment;
use crate::lab::Lab;
use crate::traffic::echo::{EchoOutcome, EchoStream};

#[derive(Debug, Clone)]
pub struct FailoverOpts {
    pub vip: Vip,
    /// The backend whose server is killed: an index into the lab's backends (0 is b1).
    pub victim: usize,
    /// Load before the kill (a baseline: nothing may fail in it) and after it.
    pub before: Duration,
    pub after: Duration,
    /// A new connection this often.
    pub interval: Duration,
    /// Bound on each short connection.
    pub conn_timeout: Duration,
    /// Long-lived streams opened to each other backend first; all must survive.
    pub survivors_per_backend: usize,
}

impl FailoverOpts {
    pub fn new(vip: Vip) -> FailoverOpts {
        FailoverOpts {
            vip,
            victim: 0,
            before: Duration::from_secs(1),
            after: Duration::from_secs(3),
            interval: Duration::from_millis(15),
            conn_timeout: Duration::from_secs(1),
            survivors_per_backend: 1,
        }
    }
}

/// What one run saw.
#[derive(Debug, Clone)]
pub struct FailoverRun {
    /// The killed backend's name (`b1`).
    pub victim: String,
    /// Just before the SIGKILL was sent.
    pub t0: Instant,
    pub timeline: Timeline,
    pub survivors: Vec<EchoOutcome>,
}

impl FailoverRun {
    /// Connections started at or after T0 that failed or were answered by the victim.
    pub fn hit_after_t0(&self) -> impl Iterator<Item = &Conn> {
        self.timeline
            .since(self.t0)
            .filter(|c| c.outcome.is_err() || c.reached(&self.victim))
    }

    /// The failover time: the start of the last connection that failed or reached the victim
    /// after T0, minus T0 (zero if none did).
    pub fn failover(&self) -> Duration {
        self.hit_after_t0()
            .map(|c| c.start - self.t0)
            .max()
            .unwrap_or_default()
    }

    /// Connections over before T0 that failed: the baseline must be clean. (One still in
    /// flight at T0 on the victim may fail from the kill; it is one of the failures a dead
    /// server explains.)
    pub fn failed_before_t0(&self) -> Vec<&Conn> {
        self.timeline
            .failures()
            .filter(|c| c.start + c.took < self.t0)
            .collect()
    }

    /// Streams that broke or lost an echo.
    pub fn broken_survivors(&self) -> Vec<&EchoOutcome> {
        self.survivors.iter().filter(|o| !o.intact()).collect()
    }
}

/// Runs the scenario once. Every backend must be up and serving; afterwards the victim's
/// server is dead (restart it with [`Deployment::start_server`]).
pub fn run(lab: &Lab, d: &mut Deployment, opts: &FailoverOpts) -> Result<FailoverRun> {
    let client = lab.client();
    let Some(victim) = lab.backends().get(opts.victim) else {
        bail!("no backend {}", opts.victim);
    };
    let load_for = opts.before + opts.after;
    // Long enough to outlast the load; stopped explicitly once it is over.
    let echo = super::echo_opts(load_for + Duration::from_secs(30));
    let mut streams = Vec::new();
    for b in lab.backends().iter().filter(|b| b.name != victim.name) {
        for _ in 0..opts.survivors_per_backend {
            let s = EchoStream::open_to(client, opts.vip.0, echo, &[b.name.as_str()], 40)
                .with_context(|| format!("a long-lived stream to {}", b.name))?;
            streams.push(s);
        }
    }
    let load = Load::start(
        client,
        LoadOpts {
            interval: opts.interval,
            timeout: opts.conn_timeout,
            ..LoadOpts::new(opts.vip.0, load_for)
        },
    );
    std::thread::sleep(opts.before);
    let t0 = Instant::now();
    d.crash_server(opts.victim)?;
    let timeline = load.finish()?;
    for s in &streams {
        s.stop();
    }
    let survivors = streams.into_iter().map(EchoStream::finish).collect();
    Ok(FailoverRun {
        victim: victim.name.clone(),
        t0,
        timeline,
        survivors,
    })
}
