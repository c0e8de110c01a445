//! A steady churn of new short connections (`GET /`, one every 20 ms by default, cycling over
//! the targets), each recorded with when it started and ended, so a test can single out those
//! made while `sheaved` was down or while a reload was being applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::lab::Host;
use crate::traffic::http::get;

/// Bound on the churn however long a test forgets to stop it.
const MAX_RUN: Duration = Duration::from_secs(300);

/// One short connection.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub target: SocketAddr,
    pub start: Instant,
    pub end: Instant,
    /// The backend that answered, or the error kind.
    pub result: Result<String, String>,
    /// Segments the client retransmitted (a lost SYN shows here as a 1 s stall).
    pub retransmits: u32,
}

impl Attempt {
    /// Whether it was under way at some point of `[from, to]`.
    pub fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end >= from
    }
}

/// The churn, running on a thread that has entered the client's namespace.
pub struct Churn {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<Attempt>>>>,
}

impl Churn {
    /// Starts a connection every `interval` (or as soon as the previous one ends, if it took
    /// longer), each bounded by `timeout`.
    pub fn start(
        client: &Host,
        targets: Vec<SocketAddr>,
        interval: Duration,
        timeout: Duration,
    ) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let client = client.clone();
        let handle =
            thread::spawn(move || client.in_netns(move || run(&targets, interval, timeout, &flag)));
        Churn {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops it and returns every attempt, in order.
    pub fn finish(mut self) -> Result<Vec<Attempt>> {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.handle.take().expect("joined once");
        h.join()
            .map_err(|_| anyhow::anyhow!("the churn thread panicked"))?
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    targets: &[SocketAddr],
    interval: Duration,
    timeout: Duration,
    stop: &AtomicBool,
) -> Vec<Attempt> {
    let began = Instant::now();
    let mut out = Vec::new();
    let mut due = began;
    for target in targets.iter().cycle() {
        if stop.load(Ordering::Relaxed) || began.elapsed() > MAX_RUN {
            break;
        }
        let start = Instant::now();
        let reply = get(*target, timeout);
        out.push(Attempt {
            target: *target,
            start,
            end: Instant::now(),
            result: reply.backend,
            retransmits: reply.retransmits,
        });
        due = (due + interval).max(Instant::now());
        while Instant::now() < due && !stop.load(Ordering::Relaxed) {
            thread::sleep((due - Instant::now()).min(Duration::from_millis(10)));
        }
    }
    out
}
