//! Passive outlier detection: a backend is judged by what the data plane saw of its TCP
//! connection attempts, without probing it. With direct server return the balancer sees only the
//! client's side, and that is enough: the client's first ACK means the backend answered the SYN;
//! the same SYN sent again means it did not answer in time (counted once per attempt). Attempts
//! neither answered nor retransmitted yet are not judged (a client that gives up after one SYN
//! says nothing about the server).
//!
//! [`Watch`] is the per-backend state machine: fed the backend's counters on every tick, it says
//! when the backend trips. What an ejection does (out of the ring, for how long, the cap on how
//! many of a VIP's backends may be out) is the desired state's business
//! (`state::lifecycle`).
use std::{collections::VecDeque, time::Instant};

use lb_common::stats::Handshakes;

use crate::config::outlier::{OutlierConfig, Ratio};

/// One backend's recent attempts.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Counters at the last tick.
    last: Option<Handshakes>,
    /// Unanswered attempts since the last answered one.
    consecutive: u64,
    /// Judged attempts and failures per tick, newest last, within the window.
    recent: VecDeque<(Instant, u64, u64)>,
}

/// Why a backend tripped, in numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trip {
    pub reason: String,
}

impl Watch {
    /// The counters read now; a trip if they say the backend fails its clients.
    pub fn observe(&mut self, now: Instant, seen: Handshakes, cfg: &OutlierConfig) -> Option<Trip> {
        let last = self.last.replace(seen)?;
        // Counters only grow; a smaller value is a restarted data plane: start afresh.
        let delta = |a: u64, b: u64| b.checked_sub(a);
        let (Some(answered), Some(failed)) = (
            delta(last.answered, seen.answered),
            delta(last.retransmitted, seen.retransmitted),
        ) else {
            self.reset();
            return None;
        };
        // Within one tick the order is unknown: an answer resets the run (ticks are short).
        if answered > 0 {
            self.consecutive = 0;
        } else {
            self.consecutive += failed;
        }
        self.recent.push_back((now, answered + failed, failed));
        while let Some(&(t, _, _)) = self.recent.front() {
            if now.duration_since(t) > cfg.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.consecutive >= cfg.consecutive_failures as u64 {
            return Some(Trip {
                reason: format!("{} attempts in a row unanswered", self.consecutive),
            });
        }
        let (judged, failures) = self
            .recent
            .iter()
            .fold((0, 0), |(j, f), &(_, dj, df)| (j + dj, f + df));
        if let Some(Ratio(r)) = cfg.failure_ratio
            && judged >= cfg.min_attempts as u64
            && failures as f64 >= r * judged as f64
        {
            return Some(Trip {
                reason: format!(
                    "{failures} of {judged} attempts unanswered in {}",
                    humantime::format_duration(cfg.window)
                ),
            });
        }
        None
    }

    /// Whether any attempt failed at the last tick (a re-admitted backend goes straight back out
    /// on its first failure).
    pub fn failed_lately(&self) -> bool {
        self.recent.back().is_some_and(|&(_, _, f)| f > 0)
    }

    /// Forget the history (a backend ejected, re-admitted, or back from down), keeping the
    /// counters' level.
    pub fn reset(&mut self) {
        self.consecutive = 0;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn h(answered: u64, retransmitted: u64) -> Handshakes {
        Handshakes {
            attempts: answered + retransmitted,
            answered,
            retransmitted,
        }
    }

    #[test]
    fn consecutive_failures_trip_and_an_answer_resets_them() {
        let cfg = OutlierConfig::default();
        let t0 = Instant::now();
        let mut w = Watch::default();
        assert_eq!(
            w.observe(t0, h(10, 0), &cfg),
            None,
            "first reading: a baseline"
        );
        assert_eq!(w.observe(t0, h(10, 4), &cfg), None, "4 of 5");
        assert_eq!(w.observe(t0, h(11, 4), &cfg), None, "an answer resets");
        assert_eq!(w.observe(t0, h(11, 8), &cfg), None);
        let trip = w.observe(t0, h(11, 9), &cfg).expect("5 in a row");
        assert_eq!(trip.reason, "5 attempts in a row unanswered");
    }

    #[test]
    fn a_failure_ratio_needs_its_minimum_volume_within_the_window() {
        let cfg = OutlierConfig {
            consecutive_failures: 1000,
            failure_ratio: Some(Ratio(0.5)),
            min_attempts: 10,
            ..OutlierConfig::default()
        };
        let t0 = Instant::now();
        let mut w = Watch::default();
        w.observe(t0, h(0, 0), &cfg);
        assert_eq!(
            w.observe(t0, h(3, 4), &cfg),
            None,
            "7 judged: below the volume"
        );
        let trip = w
            .observe(t0 + Duration::from_secs(1), h(5, 6), &cfg)
            .unwrap();
        assert_eq!(trip.reason, "6 of 11 attempts unanswered in 5s");
        // Outside the window the old attempts no longer count.
        let mut w = Watch::default();
        w.observe(t0, h(0, 0), &cfg);
        w.observe(t0, h(0, 6), &cfg);
        assert_eq!(
            w.observe(t0 + Duration::from_secs(10), h(9, 6), &cfg),
            None,
            "the failures aged out"
        );
    }

    #[test]
    fn clients_that_give_up_are_not_failures() {
        // Attempts neither answered nor retransmitted (a SYN and nothing more) are not judged.
        let cfg = OutlierConfig::default();
        let t0 = Instant::now();
        let mut w = Watch::default();
        w.observe(t0, h(0, 0), &cfg);
        let seen = Handshakes {
            attempts: 500,
            answered: 400,
            retransmitted: 0,
        };
        assert_eq!(w.observe(t0, seen, &cfg), None);
    }

    #[test]
    fn a_restarted_data_plane_starts_afresh() {
        let cfg = OutlierConfig::default();
        let t0 = Instant::now();
        let mut w = Watch::default();
        w.observe(t0, h(100, 100), &cfg);
        assert_eq!(
            w.observe(t0, h(0, 4), &cfg),
            None,
            "counters went back: no delta"
        );
        assert_eq!(w.observe(t0, h(0, 8), &cfg), None, "4 in a row since");
        assert!(w.observe(t0, h(0, 9), &cfg).is_some());
    }
}
