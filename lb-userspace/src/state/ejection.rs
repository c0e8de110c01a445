//! Ejections by passive outlier detection (see [`crate::outlier`]): a tripped backend is out of
//! the ring of every VIP it serves (it is one server; its counters are the server's), its
//! established flows stay (they may be fine), and connection attempts it never answered are
//! rescheduled by the data plane (`BACKEND_F_EJECTED`). It comes back after `base_ejection_time`
//! × the times it was ejected (capped), through slow start, and on probation: a failure before
//! probation ends sends it straight back out. Never more than `max_ejection_percent` of a
//! VIP's backends are out at once; a backend that is down, disabled or draining is left to that.
use std::time::{Duration, Instant};

use lb_common::backend::BACKEND_F_EJECTED;

use super::{MemberState, State};
use crate::config::outlier::OutlierConfig;

/// A backend's standing with outlier detection.
#[derive(Clone, Debug, Default)]
pub struct OutlierStatus {
    pub ejection: Option<Ejection>,
    /// Ejections so far (the next lasts once more as long).
    pub times: u32,
    /// Re-admitted lately: a failure before this sends it back out at once.
    pub probation_until: Option<Instant>,
}

#[derive(Clone, Debug)]
pub struct Ejection {
    pub since: Instant,
    pub until: Instant,
    /// Which ejection this is (1 for the first).
    pub nth: u32,
    /// The numbers that tripped it.
    pub reason: String,
}

impl Ejection {
    /// `ejected: 9 of 10 attempts unanswered in 5s, 2nd time, back in 60s`.
    pub fn describe(&self, now: Instant) -> String {
        let nth = match self.nth {
            1 => "1st".to_string(),
            2 => "2nd".to_string(),
            3 => "3rd".to_string(),
            n => format!("{n}th"),
        };
        let left = self.until.saturating_duration_since(now);
        format!(
            "ejected: {}, {nth} time, back in {}s",
            self.reason,
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        )
    }
}

impl OutlierStatus {
    /// The data plane's flag for it.
    pub fn flag(&self) -> u8 {
        if self.ejection.is_some() {
            BACKEND_F_EJECTED
        } else {
            0
        }
    }
}

/// Why an ejection did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotEjected {
    /// Down, disabled or draining in some VIP: that already keeps new flows away.
    OutAlready,
    /// Ejecting it would take a VIP past `max_ejection_percent`.
    Cap(String),
}

impl State {
    /// The outlier detection settings a backend is judged by: those of the first VIP (in order)
    /// that serves it and has outlier detection on.
    pub fn outlier_config(&self, id: u32) -> Option<&OutlierConfig> {
        self.vips
            .iter()
            .filter(|v| v.members.iter().any(|m| m.backend_id == id))
            .find_map(|v| {
                v.spec
                    .policy
                    .outlier_detection
                    .as_ref()
                    .filter(|o| o.enabled)
            })
    }

    pub fn outlier_status(&self, id: u32) -> Option<&OutlierStatus> {
        Some(&self.backends.get(id as usize)?.as_ref()?.outlier)
    }

    /// Eject backend `id` for `reason`, at `now`, if the rules allow: the ejection, or why not.
    pub fn eject(&mut self, id: u32, reason: String, now: Instant) -> Result<Ejection, NotEjected> {
        let cfg = self
            .outlier_config(id)
            .cloned()
            .ok_or(NotEjected::OutAlready)?;
        for v in self
            .vips
            .iter()
            .filter(|v| v.members.iter().any(|m| m.backend_id == id))
        {
            let mut ejected = 0;
            for m in &v.members {
                let (st, _) = self.member_state(v, m, now);
                if m.backend_id == id
                    && matches!(
                        st,
                        MemberState::Down | MemberState::Disabled | MemberState::Draining
                    )
                {
                    return Err(NotEjected::OutAlready);
                }
                ejected += u32::from(st == MemberState::Ejected);
            }
            let allowed = cfg.max_ejection_percent * v.members.len() as u32 / 100;
            if ejected + 1 > allowed {
                return Err(NotEjected::Cap(format!(
                    "{} has {ejected} of {} backends ejected, max_ejection_percent {} allows {allowed}",
                    v.spec.name(),
                    v.members.len(),
                    cfg.max_ejection_percent
                )));
            }
        }
        let slot = self.backends[id as usize].as_mut().expect("a live backend");
        let nth = slot.outlier.times + 1;
        let length = cfg
            .base_ejection_time
            .saturating_mul(nth)
            .min(cfg.max_ejection_time);
        let e = Ejection {
            since: now,
            until: now + length,
            nth,
            reason,
        };
        slot.outlier = OutlierStatus {
            ejection: Some(e.clone()),
            times: nth,
            probation_until: None,
        };
        self.mark_backend_pending(id);
        Ok(e)
    }

    /// Backends whose ejection is over at `now`, re-admitted: through slow start, and on
    /// probation until slow start (or, without one, the detection window) is over.
    pub fn readmit_due(&mut self, now: Instant) -> Vec<u32> {
        let due: Vec<u32> = self
            .backends()
            .map(|(id, _)| id)
            .filter(|&id| {
                self.backends[id as usize]
                    .as_ref()
                    .and_then(|s| s.outlier.ejection.as_ref())
                    .is_some_and(|e| e.until <= now)
            })
            .collect();
        for &id in &due {
            let probation = self.probation_length(id);
            let slot = self.backends[id as usize].as_mut().expect("a live backend");
            slot.outlier.ejection = None;
            slot.outlier.probation_until = Some(now + probation);
            self.start_slow_start(id);
            self.mark_backend_pending(id);
        }
        due
    }

    /// Whether `id` was re-admitted lately and is still on probation at `now`.
    pub fn on_probation(&self, id: u32, now: Instant) -> bool {
        self.outlier_status(id)
            .and_then(|o| o.probation_until)
            .is_some_and(|t| now < t)
    }

    fn probation_length(&self, id: u32) -> Duration {
        let slow = self
            .vips
            .iter()
            .filter(|v| v.members.iter().any(|m| m.backend_id == id))
            .map(|v| v.spec.policy.slow_start)
            .max()
            .unwrap_or_default();
        let window = self
            .outlier_config(id)
            .map(|c| c.window)
            .unwrap_or_default();
        slow.max(window)
    }
}
