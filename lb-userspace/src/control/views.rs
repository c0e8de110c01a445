//! Read-only answers: VIPs, their backends and ring shares, daemon status.
use super::{ApiError, Control};
use crate::{
    api::types::{BackendView, Forwarding, StatusView, VipRef, VipView},
    state::VipState,
    wire::vip_key,
};

impl Control {
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
        view(v, Vec::new())
    }

    fn vip_view(&self, v: &VipState) -> VipView {
        // Shares of the ring last published (what the data plane holds).
        let slots = &v.slot_counts;
        let backends = v
            .members
            .iter()
            .map(|m| BackendView {
                address: self.state.backend_address(m.backend_id),
                id: m.backend_id,
                weight: m.weight,
                state: if m.draining {
                    "draining"
                } else if m.weight == 0 {
                    "weight-0"
                } else {
                    "up"
                }
                .into(),
                ring_share: slots.get(&m.backend_id).copied().unwrap_or(0) as f64
                    / v.spec.ring_size as f64,
            })
            .collect();
        view(v, backends)
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

fn view(v: &VipState, backends: Vec<BackendView>) -> VipView {
    VipView {
        name: v.spec.name(),
        vip: vip_ref(v),
        id: v.id,
        forwarding: Forwarding::Ipip,
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
