//! Host-wide data-plane settings: `CONFIG[0]`.
use crate::addr::AddrWords;

/// Outer source addresses for encapsulated packets. They vary per flow (low bits taken from the
/// flow hash) so that backends' NICs spread flows over receive queues (RSS) and ECMP routers over
/// paths; a flow keeps one outer source so its packets stay in order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DataplaneConfig {
    /// IPv4 prefix (network order) for IPIP outer sources.
    pub src_v4: u32,
    /// Host bits of that prefix (network order): which bits the flow hash fills.
    pub src_v4_hostmask: u32,
    /// IPv6 prefix for IP6IP6 outer sources.
    pub src_v6: AddrWords,
    /// Host bits within the last 32-bit word of the IPv6 prefix (network order).
    pub src_v6_hostmask: u32,
    pub _pad: u32,
}
assert_layout!(
    DataplaneConfig,
    32,
    [src_v4, src_v4_hostmask, src_v6, src_v6_hostmask, _pad]
);

/// Outer IPv4 source for a flow with this hash.
#[inline(always)]
pub fn outer_src_v4(cfg: &DataplaneConfig, hash: u32) -> u32 {
    cfg.src_v4 | (hash & cfg.src_v4_hostmask)
}

/// Outer IPv6 source for a flow with this hash.
#[inline(always)]
pub fn outer_src_v6(cfg: &DataplaneConfig, hash: u32) -> AddrWords {
    let mut a = cfg.src_v6;
    a[3] |= hash & cfg.src_v6_hostmask;
    a
}
