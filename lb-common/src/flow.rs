//! Flows: the key the flow table (`FLOWS`, an LRU hash) and the flow hash are computed over.
use crate::addr::AddrWords;

/// A connection's 5-tuple as seen on the wire (ports in network byte order). Also the exact bytes
/// the flow hash reads, so the kernel and `sheave explain` hash the same thing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: AddrWords,
    pub dst: AddrWords,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Value of the flow table: the backend this flow was scheduled to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowState {
    pub backend_id: u32,
    /// The flow's hash, kept so a flow-table hit does not hash again (the outer source address of
    /// the encapsulation is derived from it).
    pub hash: u32,
    /// `FLOW_F_*` bits.
    pub flags: u32,
    /// When the flow last carried a packet, in [`FLOW_TICK_NS`] units of the kernel's coarse
    /// monotonic clock (wraps after ~52 days; compare with wrapping arithmetic). The daemon
    /// counts a draining backend's live flows with it.
    pub last_seen: u32,
    /// The sequence number of the SYN that opened the flow (0 if it was first seen later): a
    /// SYN with another number is a new connection on this tuple.
    pub syn_seq: u32,
}

/// `last_seen` ticks: 2^20 ns (~1.05 ms), a shift instead of a division on the packet path.
pub const FLOW_TICK_SHIFT: u32 = 20;
pub const FLOW_TICK_NS: u64 = 1 << FLOW_TICK_SHIFT;

/// The `last_seen` value for a coarse-clock time in nanoseconds.
#[inline(always)]
pub fn flow_tick(now_ns: u64) -> u32 {
    (now_ns >> FLOW_TICK_SHIFT) as u32
}

/// The TCP connection sent FIN or RST: a later SYN on the same tuple is a new connection and is
/// scheduled afresh instead of following the old one.
pub const FLOW_F_CLOSING: u32 = 1;

/// The client sent an ACK: the connection got past the handshake. A TCP flow without it is only
/// an attempt (a SYN), which ends quickly one way or another; the daemon counts it as live for
/// seconds, not minutes, while its backend drains.
pub const FLOW_F_ESTABLISHED: u32 = 2;

impl FlowKey {
    /// The key's bytes, exactly as the hash and the kernel's map see them.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8; core::mem::size_of::<FlowKey>()] {
        // SAFETY: FlowKey is repr(C), 40 bytes with no implicit padding.
        unsafe { &*(self as *const FlowKey as *const [u8; core::mem::size_of::<FlowKey>()]) }
    }
}
