//! One tokio task per (backend, check): probe, settle with [`Tracker`], report to the control
//! task. Thousands of checks are thousands of cheap tasks on the daemon's runtime, not threads.
use std::{net::IpAddr, sync::Arc, time::Duration};

use rand::Rng as _;
use tokio::sync::mpsc;

use super::{
    probe,
    spec::CheckSpec,
    tracker::{Change, Start},
};
use crate::metrics::DaemonMetrics;

/// What a check task tells the control task.
#[derive(Debug)]
pub struct Report {
    pub backend: IpAddr,
    pub spec: CheckSpec,
    pub detail: String,
    pub latency: Duration,
    /// Set when this result settled a new verdict.
    pub change: Option<Change>,
}

/// Run checks of `spec` against `backend` until the task is aborted (or the control task is
/// gone).
pub async fn run(
    backend: IpAddr,
    spec: CheckSpec,
    start: Start,
    reports: mpsc::Sender<Report>,
    metrics: Arc<DaemonMetrics>,
) {
    let mut tracker = start.tracker(spec.rise, spec.fall);
    // Spread first checks so a start with many backends does not burst: over an interval, or
    // over the fast interval for a backend that waits for its first result to get flows.
    let spread = match start {
        Start::Awaiting(_) => spec.fast_interval,
        Start::Settled(_) => spec.interval,
    };
    let first = spread.mul_f64(rand::rng().random::<f64>());
    tokio::time::sleep(first).await;
    let kind = spec.kind();
    let target = backend.to_string();
    loop {
        let o = probe::run(&spec.probe, backend, spec.port, spec.timeout).await;
        metrics
            .check_duration
            .with_label_values(&[target.as_str(), kind])
            .observe(o.latency.as_secs_f64());
        let change = tracker.observe(o.verdict, &o.detail);
        let report = Report {
            backend,
            spec: spec.clone(),
            detail: o.detail,
            latency: o.latency,
            change,
        };
        if reports.send(report).await.is_err() {
            return;
        }
        let base = if tracker.pending() {
            spec.fast_interval
        } else {
            spec.interval
        };
        tokio::time::sleep(jittered(base, spec.jitter)).await;
    }
}

/// `base` lengthened or shortened by a uniform random amount up to `jitter`.
fn jittered(base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let j = jitter.as_secs_f64() * (2.0 * rand::rng().random::<f64>() - 1.0);
    Duration::from_secs_f64((base.as_secs_f64() + j).max(0.001))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_millis(500);
        let j = Duration::from_millis(50);
        for _ in 0..1000 {
            let d = jittered(base, j);
            assert!(d >= base - j && d <= base + j, "{d:?}");
        }
        assert_eq!(jittered(base, Duration::ZERO), base);
    }
}
