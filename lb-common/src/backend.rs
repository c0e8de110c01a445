//! Backends: the `BACKENDS` array, indexed by a small backend id that VIP rings refer to.
use crate::addr::AddrWords;

/// One backend slot. A backend shared by several VIPs is one slot and one state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Backend {
    pub addr: AddrWords,
    /// FAMILY_V4 or FAMILY_V6: which encapsulation (IPIP or IP6IP6 outer header) reaches it.
    pub family: u8,
    /// `BACKEND_F_*` bits.
    pub flags: u8,
    pub _pad: [u8; 2],
}
assert_layout!(Backend, 20, [addr, family, flags, _pad]);

/// The slot holds a configured backend. A flow-table entry pointing at a slot without it is stale
/// (the backend was removed) and the flow is rescheduled on the ring.
pub const BACKEND_F_VALID: u8 = 1;

/// Health checks failed (or the operator disabled it): flows in the flow table that point here
/// are rescheduled on the ring on their next packet. Rings never name such a backend, except
/// for a VIP failing open (every backend down), where the flag is not set.
pub const BACKEND_F_DOWN: u8 = 2;

/// Ejected by outlier detection: out of the ring (the daemon), and connection attempts in the
/// flow table that never got an answer from it are rescheduled on the ring on their next
/// packet (a retransmitted SYN); established flows stay, they may be fine.
pub const BACKEND_F_EJECTED: u8 = 4;

/// Ring slot value meaning "no backend": a VIP whose backends all have weight 0.
pub const NO_BACKEND: u32 = u32::MAX;

/// What a flow-table entry naming a backend with these flags does with the flow's next packet:
/// the one rule the XDP program, the daemon's reconciler and `sheave explain` all follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFate {
    /// The backend is configured and not down: the flow stays on it (also while it drains).
    Keep,
    /// Down by its health checks, or disabled: rescheduled on the ring (the server is gone).
    BackendDown,
    /// The slot no longer holds a configured backend (removed): rescheduled on the ring.
    Stale,
    /// A connection attempt (no answer seen yet) on an ejected backend: rescheduled on the ring.
    Ejected,
}

impl Backend {
    /// A configured backend: what a ring slot may name.
    #[inline(always)]
    pub fn is_configured(&self) -> bool {
        self.flags & BACKEND_F_VALID != 0
    }

    /// A configured backend that is not down: what an established flow may keep using.
    #[inline(always)]
    pub fn is_usable(&self) -> bool {
        self.flags & (BACKEND_F_VALID | BACKEND_F_DOWN) == BACKEND_F_VALID
    }

    /// What happens to a flow-table entry naming this backend, whose flags are `entry_flags`.
    #[inline(always)]
    pub fn fate(&self, entry_flags: u32) -> EntryFate {
        if self.flags & BACKEND_F_VALID == 0 {
            EntryFate::Stale
        } else if self.flags & BACKEND_F_DOWN != 0 {
            EntryFate::BackendDown
        } else if self.flags & BACKEND_F_EJECTED != 0
            && entry_flags & crate::flow::FLOW_F_ESTABLISHED == 0
        {
            EntryFate::Ejected
        } else {
            EntryFate::Keep
        }
    }
}

/// A CPU's cached next hop for a backend (`NEXTHOPS[backend_id]`): the FIB's answer, reused for
/// a short time so most forwarded packets skip the FIB lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NextHopCache {
    /// The backend address it was resolved for (a reassigned id must not reuse it).
    pub addr: AddrWords,
    pub ifindex: u32,
    /// The largest outer packet length the FIB accepted (its MTU check).
    pub checked_len: u16,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// Up to the 8-byte alignment of `expires_ns` (it was implicit padding once).
    pub _pad: [u8; 6],
    /// Coarse clock (ns) after which the entry must be looked up again.
    pub expires_ns: u64,
}
assert_layout!(
    NextHopCache,
    48,
    [addr, ifindex, checked_len, smac, dmac, _pad, expires_ns]
);
