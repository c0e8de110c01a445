//! `explain`: which backend a flow goes to and why: the flow table for an established flow,
//! otherwise the VIP's Maglev ring, with the kernel's own hash.
use lb_common::{
    backend::{BACKEND_F_DOWN, BACKEND_F_VALID, NO_BACKEND},
    hash::{flow_hash, ring_slot},
};

use super::{ApiError, Control};
use crate::{
    api::types::{ExplainRequest, ExplainView},
    wire::flow_key,
};

impl Control {
    pub(super) fn explain(&self, r: &ExplainRequest) -> Result<ExplainView, ApiError> {
        let key = flow_key(r.protocol, r.source, r.destination)
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        let flow = format!("{} {} -> {}", r.protocol, r.source, r.destination);
        let vip = self
            .state
            .vips
            .iter()
            .find(|v| v.key.addr == key.dst && v.key.port == key.dport && v.key.proto == key.proto)
            .ok_or_else(|| ApiError {
                status: 404,
                message: format!("{} {} is not a VIP", r.protocol, r.destination),
            })?;
        let hash = flow_hash(&key);
        let slot = ring_slot(hash, vip.spec.ring_size);
        let mut view = ExplainView {
            flow,
            vip: vip.spec.name(),
            backend: None,
            backend_id: None,
            source: "none".into(),
            hash,
            slot,
            ring_size: vip.spec.ring_size,
            reason: String::new(),
        };
        if let Some(st) = self.dp.flow(&key) {
            let flags = self.state.backend_value(st.backend_id).flags;
            if flags & (BACKEND_F_VALID | BACKEND_F_DOWN) == BACKEND_F_VALID {
                view.backend = Some(self.state.backend_address(st.backend_id));
                view.backend_id = Some(st.backend_id);
                view.source = "flow-table".into();
                view.reason = "established flow: the flow table keeps it on its backend, \
                               whatever the ring says now"
                    .into();
                return Ok(view);
            }
            view.reason = if flags & BACKEND_F_DOWN != 0 {
                "the flow table names a backend that is down; the next packet is \
                 rescheduled on the ring: "
            } else {
                "the flow table names a removed backend; the next packet is \
                 rescheduled on the ring: "
            }
            .into();
        }
        let id = self.state.ring(vip, std::time::Instant::now()).slots[slot as usize];
        if id == NO_BACKEND {
            view.reason += "the VIP has no backend with weight > 0: new flows are dropped";
        } else {
            view.backend = Some(self.state.backend_address(id));
            view.backend_id = Some(id);
            view.source = "ring".into();
            view.reason += &format!(
                "new flow: hash {hash:#010x} -> Maglev slot {slot} of {}",
                vip.spec.ring_size
            );
        }
        Ok(view)
    }
}
