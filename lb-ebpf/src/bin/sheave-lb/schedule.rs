//! Step 3: pick the backend. An established flow keeps the backend the flow table remembers; a
//! new flow (or one whose backend was removed) takes the VIP's Maglev ring slot for its hash.
use lb_common::{
    backend::{BACKEND_F_VALID, Backend, NO_BACKEND},
    flow::FlowState,
    hash::{flow_hash, ring_slot},
    stats::Stat,
    vip::VipMeta,
};
use lb_ebpf::parse::Packet;

use crate::{
    maps::{BACKENDS, FLOWS, RINGS},
    stats,
};

pub struct Choice {
    pub backend_id: u32,
    pub backend: Backend,
    pub hash: u32,
    /// Scheduled on the ring now (not from the flow table).
    pub new_flow: bool,
}

#[inline(always)]
pub fn pick(pkt: &Packet, vip: &VipMeta) -> Result<Choice, Stat> {
    if let Some(state) = unsafe { FLOWS.get(&pkt.flow) } {
        let state = *state;
        if let Some(backend) = live_backend(state.backend_id) {
            stats::event(Stat::FlowHit);
            return Ok(Choice {
                backend_id: state.backend_id,
                backend,
                hash: state.hash,
                new_flow: false,
            });
        }
        stats::event(Stat::FlowStale);
    } else {
        stats::event(Stat::FlowMiss);
    }

    let hash = flow_hash(&pkt.flow);
    if vip.ring_size == 0 {
        return Err(Stat::DropNoBackend);
    }
    let slot = vip.ring_base + ring_slot(hash, vip.ring_size);
    let backend_id = *RINGS.get(slot).ok_or(Stat::DropNoBackend)?;
    if backend_id == NO_BACKEND {
        return Err(Stat::DropNoBackend);
    }
    let backend = live_backend(backend_id).ok_or(Stat::DropNoBackend)?;
    // Failure to insert (map full of locked entries) only costs stickiness for this packet.
    let _ = FLOWS.insert(&pkt.flow, &FlowState { backend_id, hash }, 0);
    Ok(Choice {
        backend_id,
        backend,
        hash,
        new_flow: true,
    })
}

#[inline(always)]
fn live_backend(id: u32) -> Option<Backend> {
    let b = *BACKENDS.get(id)?;
    (b.flags & BACKEND_F_VALID != 0).then_some(b)
}
