//! Passive outlier detection in the control task: on every lifecycle tick, each backend some VIP
//! watches is judged on its connection-attempt counters ([`crate::outlier::Watch`]); a tripped
//! backend is ejected through the desired state (which applies the caps), an ejection that is
//! over re-admits it, and every transition is logged and counted like any other.
use std::{collections::HashMap, time::Instant};

use log::{error, warn};

use super::Control;
use crate::{
    maps::MapStore,
    outlier::{Trip, Watch},
    state::{MemberState, ejection::NotEjected},
};

/// The control task's outlier detection bookkeeping.
#[derive(Default)]
pub struct Outliers {
    watches: HashMap<u32, Watch>,
    /// Backends whose last refused ejection was logged (once per episode).
    capped: std::collections::BTreeSet<u32>,
}

impl<M: MapStore> Control<M> {
    /// Judge the watched backends and apply what follows; whether the state changed.
    pub(super) fn judge_outliers(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for id in self.state.readmit_due(now) {
            self.log_moves(id, now, &[], "ejection over");
            if let Some(w) = self.lifecycle.outliers.watches.get_mut(&id) {
                w.reset();
            }
            changed = true;
        }
        let watched: Vec<u32> = self
            .state
            .backends()
            .map(|(id, _)| id)
            .filter(|&id| self.state.outlier_config(id).is_some())
            .collect();
        self.lifecycle
            .outliers
            .watches
            .retain(|id, _| watched.contains(id));
        for id in watched {
            let cfg = self
                .state
                .outlier_config(id)
                .cloned()
                .expect("filtered above");
            let seen = match self.maps.handshakes(id) {
                Ok(h) => h,
                Err(e) => {
                    error!("reading backend {id}'s connection attempts: {e:#}");
                    continue;
                }
            };
            let watch = self.lifecycle.outliers.watches.entry(id).or_default();
            let mut trip = watch.observe(now, seen, &cfg);
            if trip.is_none() && watch.failed_lately() && self.state.on_probation(id, now) {
                trip = Some(Trip {
                    reason: "an attempt unanswered again while on probation".into(),
                });
            }
            let ejected = self
                .state
                .outlier_status(id)
                .is_some_and(|o| o.ejection.is_some());
            let Some(trip) = trip.filter(|_| !ejected) else {
                continue;
            };
            let before = self.states_of(id, now);
            match self.state.eject(id, trip.reason, now) {
                Ok(e) => {
                    self.lifecycle.outliers.capped.remove(&id);
                    self.log_moves(id, now, &before, &e.describe(now));
                    let addr = self.state.backend_address(id).to_string();
                    self.api_metrics.ejections.with_label_values(&[&addr]).inc();
                    if let Some(w) = self.lifecycle.outliers.watches.get_mut(&id) {
                        w.reset();
                    }
                    changed = true;
                }
                Err(NotEjected::Cap(why)) => {
                    if self.lifecycle.outliers.capped.insert(id) {
                        warn!(
                            "backend {} fails its clients but stays: {why}",
                            self.state.backend_address(id)
                        );
                    }
                }
                Err(NotEjected::OutAlready) => {}
            }
        }
        changed
    }

    /// (VIP name, state) of every membership of backend `id`.
    fn states_of(&self, id: u32, now: Instant) -> Vec<(String, MemberState)> {
        let mut out = Vec::new();
        for v in &self.state.vips {
            for m in v.members.iter().filter(|m| m.backend_id == id) {
                out.push((v.spec.name(), self.state.member_state(v, m, now).0));
            }
        }
        out
    }

    /// Log (and count) every membership of `id` whose state moved from `before` (empty: from
    /// ejected), with `why`.
    fn log_moves(&self, id: u32, now: Instant, before: &[(String, MemberState)], why: &str) {
        let addr = self.state.backend_address(id).to_string();
        for (i, (vip, is)) in self.states_of(id, now).into_iter().enumerate() {
            let was = before.get(i).map_or(MemberState::Ejected, |(_, s)| *s);
            if was != is {
                self.log_transition(&vip, &addr, was.name(), is.name(), why);
            }
        }
    }
}
