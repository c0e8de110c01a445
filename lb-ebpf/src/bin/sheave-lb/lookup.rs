//! Step 2: is this packet for a VIP, and what does the host-wide configuration say.
use lb_common::{
    addr::AddrWords,
    config::DataplaneConfig,
    vip::{VIP_ADDRESS_PROTO, VipKey, VipMeta},
};
use lb_ebpf::parse::Packet;

use crate::maps::{CONFIG, VIPS};

#[inline(always)]
pub fn vip(pkt: &Packet) -> Option<VipMeta> {
    let key = VipKey {
        addr: pkt.flow.dst,
        port: pkt.flow.dport,
        proto: pkt.flow.proto,
        family: pkt.flow.family,
    };
    unsafe { VIPS.get(&key) }.copied()
}

/// Whether `dst` is an address with VIPs (the daemon adds an address entry for each).
#[inline(always)]
pub fn is_vip_address(dst: &AddrWords, family: u8) -> bool {
    let key = VipKey {
        addr: *dst,
        port: 0,
        proto: VIP_ADDRESS_PROTO,
        family,
    };
    unsafe { VIPS.get(&key) }.is_some()
}

#[inline(always)]
pub fn config() -> Option<DataplaneConfig> {
    CONFIG.get(0).copied()
}
