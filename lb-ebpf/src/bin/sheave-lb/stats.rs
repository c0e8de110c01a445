//! Per-CPU counters: one outcome per packet, plus per-VIP and per-backend traffic.
use aya_ebpf::bindings::xdp_action;
use lb_common::stats::Stat;

use crate::maps::{BACKEND_STATS, GLOBAL_STATS, VIP_STATS};

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

#[inline(always)]
pub fn vip_packet(vip_id: u32, bytes: u64) {
    if let Some(c) = VIP_STATS.get_ptr_mut(vip_id) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn backend_packet(backend_id: u32, bytes: u64) {
    if let Some(c) = BACKEND_STATS.get_ptr_mut(backend_id) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}
