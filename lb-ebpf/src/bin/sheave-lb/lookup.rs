//! Step 2: is this packet for a VIP, and what does the host-wide configuration say.
use lb_common::{
    config::DataplaneConfig,
    vip::{VipKey, VipMeta},
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

#[inline(always)]
pub fn config() -> Option<DataplaneConfig> {
    CONFIG.get(0).copied()
}
