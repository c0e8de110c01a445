//! Step 3: pick the backend. An established flow keeps the backend the flow table remembers
//! (also while that backend drains); a new flow, or one whose backend was removed or is down,
//! takes the VIP's Maglev ring slot for its hash. What an entry means and how a packet moves it
//! on are `lb_common`'s rules ([`lb_common::flow`], [`Backend::fate`]), shared with the daemon
//! and `sheave explain`.
use lb_common::{
    backend::{Backend, EntryFate, NO_BACKEND},
    flow::{
        FLOW_F_RETRANSMITTED, Handshake, flags_after, flow_tick, handshake, is_bare_syn, new_entry,
        reopens,
    },
    hash::{flow_hash, ring_slot},
    stats::Stat,
    vip::VipMeta,
};
use lb_ebpf::parse::Packet;

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
        let backend = BACKENDS.get(st.backend_id).copied().unwrap_or_default();
        if reopens(&st, pkt.tcp_flags, pkt.tcp_seq) {
            stats::event(Stat::FlowReopened);
        } else {
            match backend.fate(st.flags) {
                EntryFate::Keep => {
                    let mut flags = flags_after(st.flags, pkt.tcp_flags);
                    // What the packet says of the backend's answer to the attempt (outlier
                    // detection): only handshake packets take this branch's counting.
                    match handshake(&st, pkt.tcp_flags, pkt.tcp_seq) {
                        Some(Handshake::Answered) => stats::answered(st.backend_id),
                        Some(Handshake::Retransmitted) => {
                            flags |= FLOW_F_RETRANSMITTED;
                            stats::retransmitted(st.backend_id);
                        }
                        None => {}
                    }
                    if flags != st.flags {
                        unsafe { (*state).flags = flags };
                    }
                    // Written only when the tick moved: a busy flow dirties its entry once a
                    // millisecond at most.
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
                }
                EntryFate::BackendDown => stats::event(Stat::FlowBackendDown),
                EntryFate::Stale => stats::event(Stat::FlowStale),
                EntryFate::Ejected => stats::event(Stat::FlowEjected),
            }
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
    let backend = *BACKENDS.get(backend_id).ok_or(Stat::DropNoBackend)?;
    if !backend.is_configured() {
        return Err(Stat::DropNoBackend);
    }
    // An ICMP error follows its flow but never creates one; above the VIP's new-flow rate a
    // flow is forwarded without being remembered.
    if !pkt.icmp_error && flood::admit(vip) {
        let entry = new_entry(backend_id, hash, pkt.tcp_flags, pkt.tcp_seq, tick);
        if is_bare_syn(pkt.tcp_flags) {
            stats::attempt(backend_id);
        }
        // Failure to insert (map full of locked entries) only costs stickiness for this packet.
        let _ = FLOWS.insert(&pkt.flow, &entry, 0);
    }
    Ok(Choice {
        backend_id,
        backend,
        hash,
        new_flow: !pkt.icmp_error,
    })
}
