//! A steady stream of short connections from the client, each one recorded (when it started,
//! which backend answered or what failed), so that a test can ask what happened to the
//! connections started in any window: after a kill, after a drain command, during a ramp.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::lab::Host;
use crate::traffic::http;

/// Stack of each connection's thread: it only runs [`http::get`].
const CONN_STACK: usize = 128 * 1024;

#[derive(Debug, Clone)]
pub struct LoadOpts {
    pub target: SocketAddr,
    /// One new connection this often (not catching up when late: a late start is recorded as
    /// such, a burst would only distort the next measurement).
    pub interval: Duration,
    /// Stop starting connections after this long (or at [`Load::stop`]).
    pub duration: Duration,
    /// Bound on each connection; a dropped SYN shows up as `connect_timeout` after it.
    pub timeout: Duration,
}

impl LoadOpts {
    pub fn new(target: SocketAddr, duration: Duration) -> LoadOpts {
        LoadOpts {
            target,
            interval: Duration::from_millis(15),
            duration,
            timeout: Duration::from_secs(1),
        }
    }
}

/// One connection: when it started and how it ended.
#[derive(Debug, Clone)]
pub struct Conn {
    pub start: Instant,
    pub took: Duration,
    /// The client's port (a failed connect used one too).
    pub port: Option<u16>,
    /// The backend's name (`b1`...) or an error kind (`connect_refused`...).
    pub outcome: Result<String, String>,
}

impl Conn {
    /// Answered by `backend`.
    pub fn reached(&self, backend: &str) -> bool {
        self.outcome.as_deref() == Ok(backend)
    }
}

/// A load generator running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<Conn>>>>,
}

impl Load {
    /// Starts opening connections from `client` at once.
    pub fn start(client: &Host, opts: LoadOpts) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (host, flag) = (client.clone(), stop.clone());
        let handle = thread::spawn(move || host.in_netns(|| generate(&opts, &flag)));
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Starts no more connections; those in flight finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the schedule to end and every connection to finish.
    pub fn finish(mut self) -> Result<Timeline> {
        let handle = self.handle.take().expect("joined once");
        let mut conns = handle
            .join()
            .map_err(|_| anyhow!("the load generator panicked"))??;
        conns.sort_by_key(|c| c.start);
        Ok(Timeline { conns })
    }
}

impl Drop for Load {
    /// An early return of the caller: stop, and wait (at most one connection timeout).
    fn drop(&mut self) {
        self.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs on a thread inside the client's namespace; connection threads inherit it.
fn generate(opts: &LoadOpts, stop: &AtomicBool) -> Vec<Conn> {
    let done = Mutex::new(Vec::new());
    let push = |c: Conn| done.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    let end = Instant::now() + opts.duration;
    thread::scope(|s| {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            let start = Instant::now();
            let spawned = thread::Builder::new()
                .stack_size(CONN_STACK)
                .spawn_scoped(s, move || push(one(opts, start)));
            if spawned.is_err() {
                push(Conn {
                    start,
                    took: Duration::ZERO,
                    port: None,
                    outcome: Err("spawn_failed".into()),
                });
            }
            next = (next + opts.interval).max(Instant::now());
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn one(opts: &LoadOpts, start: Instant) -> Conn {
    let reply = http::get(opts.target, opts.timeout);
    Conn {
        start,
        took: start.elapsed(),
        port: reply.port,
        outcome: reply.backend,
    }
}

/// Every connection of a run, by start time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub conns: Vec<Conn>,
}

impl Timeline {
    /// Connections started in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Conn> {
        self.conns
            .iter()
            .filter(move |c| c.start >= from && c.start < to)
    }

    /// Connections started at or after `from`.
    pub fn since(&self, from: Instant) -> impl Iterator<Item = &Conn> {
        self.conns.iter().filter(move |c| c.start >= from)
    }

    /// Failed connections.
    pub fn failures(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter().filter(|c| c.outcome.is_err())
    }

    /// Answers per backend and failures per kind (`!kind`), for messages.
    pub fn summary<'a>(conns: impl IntoIterator<Item = &'a Conn>) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in conns {
            let key = match &c.outcome {
                Ok(b) => b.clone(),
                Err(k) => format!("!{k}"),
            };
            *m.entry(key).or_default() += 1;
        }
        m
    }
}
