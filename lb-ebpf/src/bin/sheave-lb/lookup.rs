//! Step 2: is this packet for a VIP, and what does the host-wide configuration say.
use lb_common::{
    addr::AddrWords,
    config::DataplaneConfig,
    vip::{VipKey, VipMeta},
};
use lb_ebpf::parse::Packet;

use crate::maps::{CONFIG, VIPS};

#[inline(always)]
pub fn vip(pkt: &Packet) -> Option<VipMeta> {
    unsafe { VIPS.get(&VipKey::of_flow(&pkt.flow)) }.copied()
}

/// Whether `dst` is an address with VIPs (the daemon adds an address entry for each).
#[inline(always)]
pub fn is_vip_address(dst: &AddrWords, family: u8) -> bool {
    unsafe { VIPS.get(&VipKey::address(*dst, family)) }.is_some()
}

#[inline(always)]
pub fn config() -> Option<DataplaneConfig> {
    CONFIG.get(0).copied()
}
