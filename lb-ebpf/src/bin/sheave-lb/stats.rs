//! Per-CPU counters: one outcome per packet, plus per-VIP and per-backend traffic.
use aya_ebpf::{bindings::xdp_action, maps::PerCpuArray};
use lb_common::stats::{Counter, Stat};

use crate::maps::{BACKEND_STATS, GLOBAL_STATS, HANDSHAKES, VIP_STATS};

#[inline(always)]
pub fn event(stat: Stat) {
    if let Some(c) = GLOBAL_STATS.get_ptr_mut(stat as u32) {
        unsafe { *c += 1 };
    }
}

#[inline(always)]
pub fn outcome(stat: Stat) {
    event(stat)
}

/// Count a pass-through and return the action for it.
#[inline(always)]
pub fn pass(stat: Stat) -> u32 {
    event(stat);
    xdp_action::XDP_PASS
}

/// Count a drop and return the action for it.
#[inline(always)]
pub fn drop(stat: Stat) -> u32 {
    event(stat);
    xdp_action::XDP_DROP
}

/// Count a VIP packet, and the new flow it starts if it was scheduled on the ring.
#[inline(always)]
pub fn vip_packet(vip_id: u32, bytes: u64, new_flow: bool) {
    add(&VIP_STATS, vip_id, bytes, new_flow)
}

/// Count a packet sent to a backend, and the new flow it starts.
#[inline(always)]
pub fn backend_packet(backend_id: u32, bytes: u64, new_flow: bool) {
    add(&BACKEND_STATS, backend_id, bytes, new_flow)
}

#[inline(always)]
fn add(map: &PerCpuArray<Counter>, index: u32, bytes: u64, new_flow: bool) {
    if let Some(c) = map.get_ptr_mut(index) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
            (*c).new_flows += new_flow as u64;
        }
    }
}

/// A connection attempt (bare SYN) scheduled to backend `id`.
#[inline(always)]
pub fn attempt(id: u32) {
    if let Some(h) = HANDSHAKES.get_ptr_mut(id) {
        unsafe { (*h).attempts += 1 };
    }
}

/// The client's first ACK of an attempt on backend `id`.
#[inline(always)]
pub fn answered(id: u32) {
    if let Some(h) = HANDSHAKES.get_ptr_mut(id) {
        unsafe { (*h).answered += 1 };
    }
}

/// The first retransmitted SYN of an attempt on backend `id`.
#[inline(always)]
pub fn retransmitted(id: u32) {
    if let Some(h) = HANDSHAKES.get_ptr_mut(id) {
        unsafe { (*h).retransmitted += 1 };
    }
}
