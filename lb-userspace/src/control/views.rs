//! Read-only answers: VIPs, their backends and ring shares, daemon status.

use super::{ApiError, Control};
use crate::maps::MapStore;
use crate::{
    api::types::{BackendView, CheckView, Forwarding, StatusView, VipRef, VipView, encapsulation},
    health::probe::Verdict,
    state::{MemberState, RAMP_STEPS, VipState},
    wire::vip_key,
};

impl<M: MapStore> Control<M> {
    pub(super) fn vip_views(&self) -> Vec<VipView> {
        self.state.vips.iter().map(|v| self.vip_view(v)).collect()
    }

    pub(super) fn vip_view_of(&self, v: &VipRef) -> Result<VipView, ApiError> {
        let vip = self
            .state
            .vip(&vip_key(v.address, v.port, v.protocol))
            .map_err(ApiError::from)?;
        Ok(self.vip_view(vip))
    }

    /// A VIP that was just removed (its backends may be gone from the state already).
    pub(super) fn view_of_removed(&self, v: &VipState) -> VipView {
        view(v, Vec::new(), false)
    }

    fn vip_view(&self, v: &VipState) -> VipView {
        let now = self.state.clock.now();
        // Shares and weights of the ring last published (what the data plane holds).
        let slots = &v.slot_counts;
        let backends = v
            .members
            .iter()
            .map(|m| {
                let (state, reason) = self.state.member_state(v, m, now);
                let name = if state == MemberState::Up && m.weight == 0 {
                    "weight-0"
                } else {
                    state.name()
                };
                BackendView {
                    address: self.state.backend_address(m.backend_id),
                    id: m.backend_id,
                    weight: m.weight,
                    state: name.into(),
                    reason,
                    effective_weight: v.published_weights.get(&m.backend_id).copied().unwrap_or(0)
                        as f64
                        / RAMP_STEPS as f64,
                    ring_share: slots.get(&m.backend_id).copied().unwrap_or(0) as f64
                        / v.spec.ring_size as f64,
                    flows: (state == MemberState::Draining)
                        .then(|| self.member_flows(&v.key, m.backend_id))
                        .flatten(),
                    drain_remaining_seconds: m.drain.map(|d| {
                        d.deadline
                            .duration_since(self.state.clock.wall())
                            .unwrap_or_default()
                            .as_secs_f64()
                    }),
                    check: self.check_view(m.backend_id),
                }
            })
            .collect();
        view(v, backends, self.state.all_down(v, now))
    }

    /// The backend's worst check (the one that decides its health).
    fn check_view(&self, backend_id: u32) -> Option<CheckView> {
        let (spec, status) = self.state.backend_health(backend_id)?.worst()?;
        let verdict = status.verdict;
        let (last, latency) = status.last.clone().unwrap_or_default();
        Some(CheckView {
            kind: spec.kind().into(),
            verdict: match verdict {
                _ if status.awaiting_first => "pending",
                Verdict::Up => "up",
                Verdict::Down => "down",
                Verdict::GoingAway => "going-away",
            }
            .into(),
            last,
            latency_ms: latency.as_secs_f64() * 1000.0,
        })
    }

    pub(super) fn status_view(&self) -> StatusView {
        StatusView {
            interface: self.info.interface.clone(),
            xdp_mode: self.info.xdp_mode.clone(),
            uptime_seconds: self.info.started.elapsed().as_secs(),
            vips: self.vip_views(),
        }
    }
}

fn view(v: &VipState, backends: Vec<BackendView>, all_down: bool) -> VipView {
    VipView {
        name: v.spec.name(),
        all_down,
        all_backends_down: v.spec.policy.all_backends_down.to_string(),
        vip: vip_ref(v),
        id: v.id,
        forwarding: Forwarding::Encap,
        encapsulation: {
            let mut kinds: Vec<String> = Vec::new();
            for b in &backends {
                let k = encapsulation(v.spec.address, b.address).to_string();
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
            kinds
        },
        ring_size: v.spec.ring_size,
        new_flow_limit: v.spec.new_flow_limit,
        ring_rebuilds: v.rebuilds,
        backends,
    }
}

fn vip_ref(v: &VipState) -> VipRef {
    VipRef {
        protocol: v.spec.protocol,
        address: v.spec.address,
        port: v.spec.port,
    }
}
