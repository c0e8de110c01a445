//! Time as the control plane sees it: the system's in the daemon, driven by hand in replay tests
//! (so slow start, drains and timeouts can be walked through in microseconds, exactly).
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use lb_common::flow::FLOW_TICK_SHIFT;

/// A clock handle; clones share the same time. The default is the system's.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Manual>>);

#[derive(Debug)]
struct Manual {
    instant: Instant,
    wall: SystemTime,
    /// Nanoseconds of the flow-table clock at the start.
    flow_ns: u64,
    elapsed: Mutex<Duration>,
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(Manual {
            instant: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            flow_ns: 1 << 40,
            elapsed: Mutex::new(Duration::ZERO),
        })))
    }

    /// Move a manual clock forward. The system clock moves by itself: calling this on it is a
    /// bug in the caller.
    pub fn advance(&self, by: Duration) {
        let m = self
            .0
            .as_ref()
            .expect("only a manual clock is advanced by hand");
        *m.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn elapsed(m: &Manual) -> Duration {
        *m.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Monotonic time: ramps, check timing, scan pacing.
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(m) => m.instant + Clock::elapsed(m),
        }
    }

    /// Wall-clock time: drain deadlines (persisted, so they survive a restart).
    pub fn wall(&self) -> SystemTime {
        match &self.0 {
            None => SystemTime::now(),
            Some(m) => m.wall + Clock::elapsed(m),
        }
    }

    /// The flow table's clock in ticks, as the XDP program reads it (`bpf_ktime_get_coarse_ns`
    /// is `CLOCK_MONOTONIC_COARSE`): entries' `last_seen` compare with it.
    pub fn flow_tick(&self) -> u32 {
        let ns = match &self.0 {
            None => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: a valid timespec pointer.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
                ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
            }
            Some(m) => m.flow_ns + Clock::elapsed(m).as_nanos() as u64,
        };
        (ns >> FLOW_TICK_SHIFT) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_all_three_together_and_only_when_told() {
        let c = Clock::manual();
        let (i, w, t) = (c.now(), c.wall(), c.flow_tick());
        assert_eq!((c.now(), c.wall(), c.flow_tick()), (i, w, t));
        c.clone().advance(Duration::from_secs(2));
        assert_eq!(c.now() - i, Duration::from_secs(2));
        assert_eq!(c.wall().duration_since(w).unwrap(), Duration::from_secs(2));
        let ticks = (2_000_000_000u64 >> FLOW_TICK_SHIFT) as u32;
        assert!(c.flow_tick() - t >= ticks && c.flow_tick() - t <= ticks + 1);
    }

    #[test]
    fn the_system_flow_clock_runs() {
        let c = Clock::system();
        let a = c.flow_tick();
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            c.flow_tick().wrapping_sub(a) >= 20,
            "coarse ticks are ~1 ms"
        );
    }
}
