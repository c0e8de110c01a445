//! Backend lifecycle in the control task: health reports from the checkers, slow-start steps,
//! and operator drains that end when the backend's flows do (or at the timeout).
use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use lb_common::{
    flow::{FLOW_F_CLOSING, FLOW_F_ESTABLISHED, FLOW_TICK_NS},
    vip::{IPPROTO_TCP, VipKey},
};
use log::{error, info, warn};

use super::Control;
use crate::{
    dataplane::flow_scan::flow_clock_tick,
    health::{checker::Report, supervisor::Supervisor},
    state::{CheckStatus, MemberState},
    wire::vip_name,
};

/// A TCP flow with no FIN/RST that has been silent this long no longer holds a drain open.
const TCP_IDLE: Duration = Duration::from_secs(300);
/// A UDP flow ends by silence.
const UDP_IDLE: Duration = Duration::from_secs(30);
/// After FIN/RST, the last ACKs of the close still need the same backend for a moment.
const CLOSING_GRACE: Duration = Duration::from_secs(2);
/// A TCP flow that never got past its SYN: an attempt that succeeds within a round trip or
/// failed unseen (refused or reset by a dead server's host, straight to the client).
const ATTEMPT_IDLE: Duration = Duration::from_secs(5);
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
}

impl Control {
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
        let now = Instant::now();
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
        if let Err(e) = crate::reconcile::sync(&mut self.dp, &mut self.state, &self.encap) {
            error!("writing the maps failed (will retry): {e:#}");
        }
        self.note_all_down();
    }

    /// Say loudly when a VIP has no backend up, and what it does about it.
    fn note_all_down(&mut self) {
        let now = Instant::now();
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

    /// Periodic work: slow-start steps and drains.
    pub(super) fn lifecycle_tick(&mut self) {
        let now = Instant::now();
        if self.state.advance_ramps(now) {
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
            match self.count_flows() {
                Ok(counts) => {
                    self.lifecycle.flow_counts = counts;
                    self.lifecycle.scan_cost = now.elapsed();
                    self.lifecycle.last_scan = Some((now, SystemTime::now()));
                }
                Err(e) => error!("counting flows of draining backends: {e:#}"),
            }
        }
        self.finish_drains();
    }

    /// Live flows per (VIP, backend) in the flow table.
    fn count_flows(&self) -> anyhow::Result<HashMap<(VipKey, u32), u64>> {
        let now = flow_clock_tick();
        let ticks = |d: Duration| (d.as_nanos() / FLOW_TICK_NS as u128) as u32;
        let (tcp_idle, udp_idle, grace) = (ticks(TCP_IDLE), ticks(UDP_IDLE), ticks(CLOSING_GRACE));
        let attempt_idle = ticks(ATTEMPT_IDLE);
        let mut counts = HashMap::new();
        self.dp.scan_flows(|k, v| {
            let age = now.wrapping_sub(v.last_seen);
            let live = if v.flags & FLOW_F_CLOSING != 0 {
                age < grace
            } else if k.proto == IPPROTO_TCP && v.flags & FLOW_F_ESTABLISHED != 0 {
                age < tcp_idle
            } else if k.proto == IPPROTO_TCP {
                age < attempt_idle
            } else {
                age < udp_idle
            };
            if live {
                let vip = VipKey {
                    addr: k.dst,
                    port: k.dport,
                    proto: k.proto,
                    family: k.family,
                };
                *counts.entry((vip, v.backend_id)).or_insert(0) += 1;
            }
        })?;
        Ok(counts)
    }

    /// Remove drained members whose flows have ended or whose time is up.
    fn finish_drains(&mut self) {
        let now = SystemTime::now();
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
        for (vip, addr, why) in &done {
            if let Err(e) = self.state.remove_backend(vip, *addr) {
                error!("ending the drain of {addr} from {}: {e}", vip_name(vip));
                continue;
            }
            self.log_transition(
                &vip_name(vip),
                &addr.to_string(),
                MemberState::Draining.name(),
                "removed",
                why,
            );
        }
        if let Err(e) = self.commit() {
            error!("removing drained backends: {}", e.message);
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
