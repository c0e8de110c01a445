//! The backends' decap program: removes Sheave's outer header from packets for the VIPs this
//! backend serves (see `lb_ebpf::decap`), so a host without tunnel modules serves them on lo.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use lb_common::{
    decap::DecapKey,
    limits::MAX_DECAP_VIPS,
    stats::{DECAP_STAT_COUNT, DecapStat},
};

/// Inner destinations (VIPs) to decapsulate for; the value is unused.
#[map]
static DECAP_VIPS: HashMap<DecapKey, u8> = HashMap::with_max_entries(MAX_DECAP_VIPS, 0);

#[map]
static DECAP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DECAP_STAT_COUNT, 0);

#[xdp(frags)]
pub fn sheave_decap(ctx: XdpContext) -> u32 {
    let result = lb_ebpf::decap::decapsulate(&ctx, |key| unsafe { DECAP_VIPS.get(key) }.is_some());
    if let Some(c) = DECAP_STATS.get_ptr_mut(result as u32) {
        unsafe { *c += 1 };
    }
    match result {
        DecapStat::DropMalformed => xdp_action::XDP_DROP,
        DecapStat::Pass | DecapStat::Decapsulated => xdp_action::XDP_PASS,
    }
}

// Built for the host only by `cargo clippy --workspace`; the panic handler and license live in
// the library.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
