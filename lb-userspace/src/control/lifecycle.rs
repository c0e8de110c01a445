//! Backend lifecycle in the control task: health reports from the checkers, slow-start steps,
//! and operator drains that end when the backend's flows do (or at the timeout).
use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use lb_common::{
    flow::{Lifetimes, Phase},
    vip::VipKey,
};
use log::{error, info, warn};

use super::Control;
use crate::maps::MapStore;
use crate::{
    health::{checker::Report, supervisor::Supervisor},
    state::{CheckStatus, MemberState},
    wire::vip_name,
};

/// The flow table is read at most this often while something drains.
const MIN_SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Health and drain bookkeeping of the control task.
#[derive(Default)]
pub struct Lifecycle {
    pub supervisor: Option<Supervisor>,
    /// Live flows per (VIP, backend id) at the last scan of the flow table.
    pub flow_counts: HashMap<(VipKey, u32), u64>,
    /// When the last scan started (drains started later wait for the next one).
    last_scan: Option<(Instant, SystemTime)>,
    scan_cost: Duration,
    /// VIPs known to have every backend down (logged once per episode).
    all_down: std::collections::BTreeSet<u32>,
    /// Passive outlier detection's watches.
    pub(super) outliers: super::ejections::Outliers,
}

impl<M: MapStore> Control<M> {
    /// Start and stop check tasks to match the desired state (whose check entries the last
    /// sync aligned with the wanted checks).
    pub(super) fn reconcile_checks(&mut self) {
        let wanted = self.state.wanted_checks();
        if let Some(sup) = &mut self.lifecycle.supervisor {
            let state = &self.state;
            sup.reconcile(&wanted, |w| state.check_start(w.backend, &w.spec));
        }
    }

    /// A check task's result.
    pub(super) fn on_health_report(&mut self, r: Report) {
        let wanted = crate::state::WantedCheck {
            backend: r.backend,
            spec: r.spec.clone(),
        };
        if !self.state.wanted_checks().contains(&wanted) {
            return; // From a task stopped a moment ago.
        }
        let Some(change) = r.change else {
            self.state
                .set_last_check(r.backend, &r.spec, r.detail, r.latency);
            return;
        };
        let now = self.state.clock.now();
        let status = CheckStatus {
            last: Some((r.detail, r.latency)),
            ..CheckStatus::settled(change.to, change.reason.clone(), now)
        };
        let moves = self.state.set_check_status(r.backend, &r.spec, status, now);
        for (vip, from, to, reason) in &moves {
            self.log_transition(vip, &r.backend.to_string(), from.name(), to.name(), reason);
        }
        if !moves.is_empty() {
            self.sync_runtime();
        }
    }

    pub(super) fn log_transition(&self, vip: &str, backend: &str, from: &str, to: &str, why: &str) {
        let line = format!("backend {backend} of {vip}: {from} -> {to} ({why})");
        if to == "down" {
            warn!("{line}");
        } else {
            info!("{line}");
        }
        self.api_metrics
            .transitions
            .with_label_values(&[vip, backend, from, to])
            .inc();
    }

    /// Write health-driven changes to the maps. Health is not persisted (checks re-learn it).
    pub(super) fn sync_runtime(&mut self) {
        if let Err(e) = crate::reconcile::sync(&mut self.maps, &mut self.state, &self.encap) {
            error!("writing the maps failed (will retry): {e:#}");
        }
        self.note_all_down();
    }

    /// Say loudly when a VIP has no backend up, and what it does about it.
    fn note_all_down(&mut self) {
        let now = self.state.clock.now();
        for v in &self.state.vips {
            let down = self.state.all_down(v, now);
            if down && self.lifecycle.all_down.insert(v.id) {
                error!(
                    "every backend of {} is down: {}",
                    v.spec.name(),
                    if v.failing_open {
                        "failing open (new flows still go to them)"
                    } else {
                        "dropping new flows"
                    }
                );
            } else if !down && self.lifecycle.all_down.remove(&v.id) {
                warn!("{} has a backend up again", v.spec.name());
            }
        }
    }

    /// Periodic work: outlier detection, slow-start steps and drains.
    pub(super) fn lifecycle_tick(&mut self) {
        let now = self.state.clock.now();
        let judged = self.judge_outliers(now);
        if self.state.advance_ramps(now) || judged {
            self.sync_runtime();
        }
        if !self.state.any_draining(now) {
            self.lifecycle.flow_counts.clear();
            return;
        }
        let due = self.lifecycle.last_scan.is_none_or(|(t, _)| {
            now.duration_since(t) >= MIN_SCAN_INTERVAL.max(self.lifecycle.scan_cost * 10)
        });
        if due {
            // What the scan costs in real time paces the next one, whatever the clock says.
            let scan = Instant::now();
            match self.count_flows() {
                Ok(counts) => {
                    self.lifecycle.flow_counts = counts;
                    self.lifecycle.scan_cost = scan.elapsed();
                    self.lifecycle.last_scan = Some((now, self.state.clock.wall()));
                }
                Err(e) => error!("counting flows of draining backends: {e:#}"),
            }
        }
        self.finish_drains();
    }

    /// Live flows per (VIP, backend) in the flow table: those not yet [`Phase::Ended`].
    fn count_flows(&self) -> anyhow::Result<HashMap<(VipKey, u32), u64>> {
        let now = self.state.clock.flow_tick();
        let mut counts = HashMap::new();
        self.maps.scan_flows(&mut |k, v| {
            if Lifetimes::DEFAULT.phase(k.proto, v, now) != Phase::Ended {
                *counts
                    .entry((VipKey::of_flow(k), v.backend_id))
                    .or_insert(0) += 1;
            }
        })?;
        Ok(counts)
    }

    /// Remove drained members whose flows have ended or whose time is up.
    fn finish_drains(&mut self) {
        let now = self.state.clock.wall();
        let scanned = self.lifecycle.last_scan.map(|(_, t)| t);
        let mut done = Vec::new();
        for (vip, addr, drain) in self.state.drains() {
            let id = self.state.backend_id(addr).expect("a member's backend");
            let flows = self.lifecycle.flow_counts.get(&(vip, id)).copied();
            let took = now.duration_since(drain.since).unwrap_or_default();
            if now >= drain.deadline {
                done.push((
                    vip,
                    addr,
                    format!("drain timeout after {:.1}s", took.as_secs_f64()),
                ));
            } else if scanned.is_some_and(|t| t > drain.since) && flows.unwrap_or(0) == 0 {
                done.push((
                    vip,
                    addr,
                    format!("no flows left after {:.1}s", took.as_secs_f64()),
                ));
            }
        }
        if done.is_empty() {
            return;
        }
        let mut next = self.state.clone();
        let mut removed = Vec::new();
        for (vip, addr, why) in done {
            match next.remove_backend(&vip, addr) {
                Ok(()) => removed.push((vip, addr, why)),
                Err(e) => error!("ending the drain of {addr} from {}: {e}", vip_name(&vip)),
            }
        }
        if let Err(e) = self.commit(next) {
            // Tried again at the next tick.
            error!("removing drained backends: {}", e.message);
            return;
        }
        for (vip, addr, why) in &removed {
            self.log_transition(
                &vip_name(vip),
                &addr.to_string(),
                MemberState::Draining.name(),
                "removed",
                why,
            );
        }
        self.reconcile_checks();
    }

    /// Live flows on a member now (`None` when not counted: nothing drains).
    pub(super) fn member_flows(&self, vip: &VipKey, backend_id: u32) -> Option<u64> {
        self.lifecycle.last_scan?;
        Some(
            self.lifecycle
                .flow_counts
                .get(&(*vip, backend_id))
                .copied()
                .unwrap_or(0),
        )
    }
}
