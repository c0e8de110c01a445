//! Virtual IPs: the `VIPS` hash map, keyed by {address, port, protocol}.
use crate::{addr::AddrWords, flow::FlowKey};

/// Key of the `VIPS` map. `port` is in network byte order, as read from the packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VipKey {
    pub addr: AddrWords,
    pub port: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    /// FAMILY_V4 or FAMILY_V6.
    pub family: u8,
}
assert_layout!(VipKey, 20, [addr, port, proto, family]);

impl VipKey {
    /// The VIP a flow is addressed to: its destination address, port and protocol.
    #[inline(always)]
    pub fn of_flow(flow: &FlowKey) -> VipKey {
        VipKey {
            addr: flow.dst,
            port: flow.dport,
            proto: flow.proto,
            family: flow.family,
        }
    }

    /// The address entry of `addr` (see [`VIP_ADDRESS_PROTO`]).
    #[inline(always)]
    pub fn address(addr: AddrWords, family: u8) -> VipKey {
        VipKey {
            addr,
            port: 0,
            proto: VIP_ADDRESS_PROTO,
            family,
        }
    }
}

/// Everything the packet path needs about a VIP in one value, so a packet costs one VIP lookup.
///
/// Rings are double-buffered: the daemon owns two regions of `RINGS` per VIP, fills the inactive
/// one and then replaces this value with `ring_base` pointing at it. A packet reads this value
/// once, so it sees either the old ring or the new one, never half of each.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipMeta {
    /// Index into `VIP_STATS`; also names the VIP in logs and metrics.
    pub vip_id: u32,
    /// `VIP_F_*` bits.
    pub flags: u32,
    /// Maglev table size M (a prime); the ring occupies `RINGS[ring_base .. ring_base + M]`.
    pub ring_size: u32,
    /// First slot of the active ring half in `RINGS`.
    pub ring_base: u32,
    /// New flows per second per CPU that may enter the flow table (0: no limit). Above it new
    /// flows are still scheduled on the ring, but not remembered, so a SYN flood cannot evict
    /// established flows from the LRU.
    pub new_flow_rate: u32,
    pub _pad: u32,
}
assert_layout!(
    VipMeta,
    24,
    [vip_id, flags, ring_size, ring_base, new_flow_rate, _pad]
);

/// Token bucket of the new-flow guard, per VIP and CPU (`FLOOD[vip_id]`). Tokens are counted in
/// flow-nanoseconds (a flow costs 1e9), so refilling needs no division on the packet path.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FloodBucket {
    pub tokens: u64,
    pub last_ns: u64,
}
assert_layout!(FloodBucket, 16, [tokens, last_ns]);

/// A `VIPS` entry with `proto` 0 and `port` 0 marks an address that has VIPs: the program
/// answers ICMP echo requests to it and drops fragments sent to it.
pub const VIP_ADDRESS_PROTO: u8 = 0;
/// Flag of such an address entry's value.
pub const VIP_F_ADDRESS: u32 = 1;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
