//! The traffic a restart must not disturb: held echo streams plus a churn of new connections,
//! started together and reported together.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::churn::{Attempt, Churn};
use crate::lab::Host;
use crate::traffic::echo::{EchoOpts, EchoOutcome, EchoStream};

/// A new connection or echo this slow needed a retransmission (the lab's round trip is well
/// under a millisecond; the first retransmission timeout is 200 ms, a SYN's 1 s).
const SLOW: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct TrafficOpts {
    pub held: EchoOpts,
    /// A new connection this often.
    pub churn_interval: Duration,
    /// Bound on each new connection (connect, request, whole response). A lost SYN costs 1 s,
    /// so this leaves room for one retransmission and a busy machine.
    pub churn_timeout: Duration,
}

impl Default for TrafficOpts {
    fn default() -> Self {
        TrafficOpts {
            held: EchoOpts::default(),
            churn_interval: Duration::from_millis(20),
            churn_timeout: Duration::from_secs(5),
        }
    }
}

/// Running traffic from the lab's client.
pub struct Traffic {
    began: Instant,
    client: Host,
    opts: TrafficOpts,
    held: Vec<EchoStream>,
    churn: Option<Churn>,
}

impl Traffic {
    /// Starts the churn over `churn_targets` (none: no churn). Held streams are added with
    /// [`Traffic::hold`] and [`Traffic::hold_spread`].
    pub fn start(client: &Host, churn_targets: Vec<SocketAddr>, opts: TrafficOpts) -> Traffic {
        let churn = (!churn_targets.is_empty()).then(|| {
            Churn::start(
                client,
                churn_targets,
                opts.churn_interval,
                opts.churn_timeout,
            )
        });
        Traffic {
            began: Instant::now(),
            client: client.clone(),
            opts,
            held: Vec::new(),
            churn,
        }
    }

    /// Opens `n` held streams to each of `targets`.
    pub fn hold(&mut self, targets: &[SocketAddr], n: usize) -> Result<()> {
        for _ in 0..n {
            for t in targets {
                self.held
                    .push(EchoStream::open(&self.client, *t, self.opts.held)?);
            }
        }
        Ok(())
    }

    /// Opens held streams to `target` until each of `backends` holds `per_backend` of them,
    /// closing the surplus cleanly; at most `max_attempts` streams in all.
    pub fn hold_spread(
        &mut self,
        target: SocketAddr,
        backends: &[&str],
        per_backend: usize,
        max_attempts: usize,
    ) -> Result<()> {
        let mut have: BTreeMap<String, usize> =
            backends.iter().map(|b| (b.to_string(), 0)).collect();
        for _ in 0..max_attempts {
            if have.values().all(|&n| n >= per_backend) {
                return Ok(());
            }
            let s = EchoStream::open(&self.client, target, self.opts.held)?;
            match have.get_mut(&s.backend) {
                Some(n) if *n < per_backend => {
                    *n += 1;
                    self.held.push(s);
                }
                _ => {
                    let o = s.close();
                    if let Some(e) = o.error {
                        bail!("closing a surplus stream to {}: {e}", o.backend);
                    }
                }
            }
        }
        if have.values().all(|&n| n >= per_backend) {
            return Ok(());
        }
        bail!(
            "{max_attempts} streams to {target} did not reach {per_backend} per backend: {have:?}"
        )
    }

    /// (target, backend) of every held stream, in the order opened.
    pub fn held(&self) -> Vec<(SocketAddr, String)> {
        self.held
            .iter()
            .map(|s| (s.target, s.backend.clone()))
            .collect()
    }

    /// Stops everything (held streams close cleanly) and reports.
    pub fn finish(mut self) -> Result<TrafficReport> {
        for s in &self.held {
            s.stop();
        }
        let held = self.held.drain(..).map(EchoStream::finish).collect();
        let attempts = match self.churn.take() {
            Some(c) => c.finish()?,
            None => Vec::new(),
        };
        Ok(TrafficReport {
            began: self.began,
            held,
            attempts,
        })
    }
}

/// What the traffic saw.
#[derive(Debug, Clone)]
pub struct TrafficReport {
    /// When the traffic started: the origin of the offsets in [`TrafficReport::summary`].
    pub began: Instant,
    pub held: Vec<EchoOutcome>,
    pub attempts: Vec<Attempt>,
}

impl TrafficReport {
    /// Held streams that did not survive.
    pub fn broken(&self) -> Vec<&EchoOutcome> {
        self.held.iter().filter(|h| !h.intact()).collect()
    }

    /// New connections that failed.
    pub fn failed(&self) -> Vec<&Attempt> {
        self.attempts.iter().filter(|a| a.result.is_err()).collect()
    }

    /// New connections under way at some point of `[from, to]`.
    pub fn during(&self, from: Instant, to: Instant) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.overlaps(from, to))
            .collect()
    }

    /// New connections started at or after `t`.
    pub fn started_after(&self, t: Instant) -> Vec<&Attempt> {
        self.attempts.iter().filter(|a| a.start >= t).collect()
    }

    /// Successful new connections per backend.
    pub fn by_backend<'a>(
        attempts: impl IntoIterator<Item = &'a Attempt>,
    ) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for a in attempts {
            if let Ok(b) = &a.result {
                *m.entry(b.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Client retransmissions: (held streams, new connections).
    pub fn retransmits(&self) -> (u32, u32) {
        (
            self.held.iter().map(|h| h.retransmits).sum(),
            self.attempts.iter().map(|a| a.retransmits).sum(),
        )
    }

    /// The longest wait for an echo on any held stream.
    pub fn slowest_echo(&self) -> Duration {
        self.held
            .iter()
            .map(|h| h.slowest)
            .max()
            .unwrap_or_default()
    }

    /// The longest new connection.
    pub fn slowest_connection(&self) -> Duration {
        self.attempts
            .iter()
            .map(|a| a.end - a.start)
            .max()
            .unwrap_or_default()
    }

    /// One paragraph with the figures, and the details of anything that failed.
    pub fn summary(&self) -> String {
        let (rh, rc) = self.retransmits();
        let lines: u64 = self.held.iter().map(|h| h.sent).sum();
        let mut s = format!(
            "held streams: {} ({} lines), broken {}; new connections: {}, failed {}; \
             client retransmissions: held {rh}, new {rc}; slowest echo {:?}, slowest new \
             connection {:?}; new connections per backend {:?}",
            self.held.len(),
            lines,
            self.broken().len(),
            self.attempts.len(),
            self.failed().len(),
            self.slowest_echo(),
            self.slowest_connection(),
            Self::by_backend(&self.attempts),
        );
        for h in self.broken() {
            let _ = write!(
                s,
                "\n  broken: {} -> {} on {}: {}/{} lines, {}",
                h.local,
                h.target,
                h.backend,
                h.echoed,
                h.sent,
                h.error.as_deref().unwrap_or("lines missing")
            );
        }
        for a in self.failed().iter().take(20) {
            let _ = write!(
                s,
                "\n  failed: {} at +{:?} after {:?}: {}",
                a.target,
                a.start - self.began,
                a.end - a.start,
                a.result.as_ref().err().map_or("", String::as_str)
            );
        }
        let slow = self
            .attempts
            .iter()
            .filter(|a| a.result.is_ok() && a.end - a.start >= SLOW);
        for a in slow.take(20) {
            let _ = write!(
                s,
                "\n  slow: {} at +{:?} took {:?} ({} retransmissions)",
                a.target,
                a.start - self.began,
                a.end - a.start,
                a.retransmits
            );
        }
        for h in self.held.iter().filter(|h| h.intact() && h.slowest >= SLOW) {
            let _ = write!(
                s,
                "\n  slow echo: {} -> {} on {}: {:?} ({} retransmissions)",
                h.local, h.target, h.backend, h.slowest, h.retransmits
            );
        }
        s
    }
}
