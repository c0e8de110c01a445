//! Step 3: pick the backend. An established flow keeps the backend the flow table remembers
//! (also while that backend drains); a new flow, or one whose backend was removed or is down,
//! takes the VIP's Maglev ring slot for its hash.
use lb_common::{
    backend::{BACKEND_F_DOWN, BACKEND_F_VALID, Backend, NO_BACKEND},
    flow::{FLOW_F_CLOSING, FLOW_F_ESTABLISHED, FlowState, flow_tick},
    hash::{flow_hash, ring_slot},
    stats::Stat,
    vip::VipMeta,
};
use lb_ebpf::parse::{Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

use crate::{
    flood,
    maps::{BACKENDS, FLOWS, RINGS},
    stats,
};

pub struct Choice {
    pub backend_id: u32,
    pub backend: Backend,
    pub hash: u32,
    /// Scheduled on the ring now as a new flow (not from the flow table).
    pub new_flow: bool,
}

#[inline(always)]
pub fn pick(pkt: &Packet, vip: &VipMeta, now_ns: u64) -> Result<Choice, Stat> {
    let tick = flow_tick(now_ns);
    if let Some(state) = FLOWS.get_ptr_mut(&pkt.flow) {
        let st = unsafe { *state };
        // A bare SYN starts a new connection on this tuple, scheduled like any new flow, when the
        // old connection closed, or when its sequence number is not the one that opened the
        // entry (the old connection ended unseen, e.g. reset by a crashed server's host). A
        // retransmitted SYN carries the same number and follows its flow.
        let bare_syn = pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        let reopened = bare_syn && (st.flags & FLOW_F_CLOSING != 0 || st.syn_seq != pkt.tcp_seq);
        if reopened {
            stats::event(Stat::FlowReopened);
        } else if let Some(backend) = usable_backend(st.backend_id) {
            let mut flags = st.flags;
            if pkt.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
                flags |= FLOW_F_CLOSING;
            }
            if pkt.tcp_flags & TCP_ACK != 0 {
                flags |= FLOW_F_ESTABLISHED;
            }
            if flags != st.flags {
                unsafe { (*state).flags = flags };
            }
            // Written only when the tick moved: a busy flow dirties its entry once a millisecond
            // at most.
            if st.last_seen != tick {
                unsafe { (*state).last_seen = tick };
            }
            stats::event(Stat::FlowHit);
            return Ok(Choice {
                backend_id: st.backend_id,
                backend,
                hash: st.hash,
                new_flow: false,
            });
        } else if backend_down(st.backend_id) {
            stats::event(Stat::FlowBackendDown);
        } else {
            stats::event(Stat::FlowStale);
        }
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
    // An ICMP error follows its flow but never creates one; above the VIP's new-flow rate a
    // flow is forwarded without being remembered.
    if !pkt.icmp_error && flood::admit(vip) {
        let bare_syn = pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        let mut flags = if pkt.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            FLOW_F_CLOSING
        } else {
            0
        };
        if pkt.tcp_flags & TCP_ACK != 0 {
            flags |= FLOW_F_ESTABLISHED;
        }
        // Failure to insert (map full of locked entries) only costs stickiness for this packet.
        let _ = FLOWS.insert(
            &pkt.flow,
            &FlowState {
                backend_id,
                hash,
                flags,
                last_seen: tick,
                syn_seq: if bare_syn { pkt.tcp_seq } else { 0 },
            },
            0,
        );
    }
    Ok(Choice {
        backend_id,
        backend,
        hash,
        new_flow: !pkt.icmp_error,
    })
}

/// A configured backend (what a ring slot may name).
#[inline(always)]
fn live_backend(id: u32) -> Option<Backend> {
    let b = *BACKENDS.get(id)?;
    (b.flags & BACKEND_F_VALID != 0).then_some(b)
}

/// A configured backend that is not down (what an established flow may keep using).
#[inline(always)]
fn usable_backend(id: u32) -> Option<Backend> {
    let b = *BACKENDS.get(id)?;
    (b.flags & (BACKEND_F_VALID | BACKEND_F_DOWN) == BACKEND_F_VALID).then_some(b)
}

#[inline(always)]
fn backend_down(id: u32) -> bool {
    BACKENDS
        .get(id)
        .is_some_and(|b| b.flags & BACKEND_F_DOWN != 0)
}
