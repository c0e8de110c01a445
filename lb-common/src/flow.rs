//! Flows: the key the flow table (`FLOWS`, an LRU hash) and the flow hash are computed over.
use crate::addr::AddrWords;

/// A connection's 5-tuple as seen on the wire (ports in network byte order). Also the exact bytes
/// the flow hash reads, so the kernel and `sheave explain` hash the same thing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FlowKey {
    pub src: AddrWords,
    pub dst: AddrWords,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}
assert_layout!(FlowKey, 40, [src, dst, sport, dport, proto, family, _pad]);

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
assert_layout!(FlowState, 20, [backend_id, hash, flags, last_seen, syn_seq]);

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

/// The opening SYN was sent again (the backend did not answer it in time): counted once per
/// attempt, as a failed attempt, by outlier detection.
pub const FLOW_F_RETRANSMITTED: u32 = 4;

/// The client sent an ACK: the connection got past the handshake. A TCP flow without it is only
/// an attempt (a SYN), which ends quickly one way or another; the daemon counts it as live for
/// seconds, not minutes, while its backend drains.
pub const FLOW_F_ESTABLISHED: u32 = 2;

/// TCP header flags (byte 13 of the header).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A SYN without ACK: a client opening a connection (UDP and ICMP pass 0 flags).
#[inline(always)]
pub fn is_bare_syn(tcp_flags: u8) -> bool {
    tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

/// An entry's flags after a packet with `tcp_flags` (a new entry starts from 0): FIN or RST
/// closes the connection, an ACK from the client means it got past the handshake.
#[inline(always)]
pub fn flags_after(flags: u32, tcp_flags: u8) -> u32 {
    let mut f = flags;
    if tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        f |= FLOW_F_CLOSING;
    }
    if tcp_flags & TCP_ACK != 0 {
        f |= FLOW_F_ESTABLISHED;
    }
    f
}

/// Whether a packet starts a new connection on a tuple the flow table already has: a bare SYN
/// after the old connection closed, or one whose sequence number is not the one that opened the
/// entry (the old connection ended unseen, e.g. reset by a crashed server's host). A
/// retransmitted SYN carries the same number and follows its flow.
#[inline(always)]
pub fn reopens(entry: &FlowState, tcp_flags: u8, tcp_seq: u32) -> bool {
    is_bare_syn(tcp_flags) && (entry.flags & FLOW_F_CLOSING != 0 || entry.syn_seq != tcp_seq)
}

/// What a packet on an existing entry says about its backend's answer to the connection attempt
/// (outlier detection's signals; UDP and ICMP have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The client's first ACK: the backend answered the SYN.
    Answered,
    /// The opening SYN again, same sequence number, before any answer: the backend did not
    /// answer in time (counted once per attempt).
    Retransmitted,
}

/// The handshake signal of a packet with `tcp_flags` and `tcp_seq` on an entry (`None` for most
/// packets). To be asked before the entry's flags are updated for the packet.
#[inline(always)]
pub fn handshake(entry: &FlowState, tcp_flags: u8, tcp_seq: u32) -> Option<Handshake> {
    if entry.flags & FLOW_F_ESTABLISHED != 0 {
        return None;
    }
    if tcp_flags & TCP_ACK != 0 {
        Some(Handshake::Answered)
    } else if is_bare_syn(tcp_flags)
        && entry.syn_seq == tcp_seq
        && entry.flags & FLOW_F_RETRANSMITTED == 0
    {
        Some(Handshake::Retransmitted)
    } else {
        None
    }
}

/// The flow-table entry a new flow's first packet creates.
#[inline(always)]
pub fn new_entry(backend_id: u32, hash: u32, tcp_flags: u8, tcp_seq: u32, tick: u32) -> FlowState {
    FlowState {
        backend_id,
        hash,
        flags: flags_after(0, tcp_flags),
        last_seen: tick,
        syn_seq: if is_bare_syn(tcp_flags) { tcp_seq } else { 0 },
    }
}

/// Where a flow is in its life, from its entry and how long it has been silent: what decides
/// whether it still holds a draining backend, and what `sheave explain` says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// TCP, only a SYN seen: an attempt, which succeeds within a round trip or fails unseen.
    Attempt,
    /// TCP past its handshake, or UDP, and not silent for longer than its idle timeout.
    Active,
    /// FIN or RST seen, within the grace the last ACKs of a close need.
    Closing,
    /// Over: closed longer ago than the grace, or silent longer than its idle timeout. The next
    /// packet still finds the entry (until the LRU evicts it), but nothing is waiting on it.
    Ended,
}

/// How long each kind of flow counts as live without a packet, in flow-table ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// A TCP flow past its handshake, without FIN/RST.
    pub tcp_idle: u32,
    /// A TCP flow that never got past its SYN.
    pub attempt_idle: u32,
    /// After FIN/RST.
    pub closing_grace: u32,
    /// A UDP flow.
    pub udp_idle: u32,
}

impl Lifetimes {
    /// The daemon's: silent TCP 300 s, attempts 5 s, closes 2 s, UDP 30 s.
    pub const DEFAULT: Lifetimes = Lifetimes {
        tcp_idle: ticks_of_secs(300),
        attempt_idle: ticks_of_secs(5),
        closing_grace: ticks_of_secs(2),
        udp_idle: ticks_of_secs(30),
    };

    /// The phase of an entry of protocol `proto` at flow-table time `now`.
    pub fn phase(&self, proto: u8, entry: &FlowState, now: u32) -> Phase {
        let age = now.wrapping_sub(entry.last_seen);
        let (limit, phase) = if entry.flags & FLOW_F_CLOSING != 0 {
            (self.closing_grace, Phase::Closing)
        } else if proto == crate::vip::IPPROTO_TCP && entry.flags & FLOW_F_ESTABLISHED != 0 {
            (self.tcp_idle, Phase::Active)
        } else if proto == crate::vip::IPPROTO_TCP {
            (self.attempt_idle, Phase::Attempt)
        } else {
            (self.udp_idle, Phase::Active)
        };
        if age < limit { phase } else { Phase::Ended }
    }
}

/// Whole seconds in flow-table ticks.
pub const fn ticks_of_secs(s: u64) -> u32 {
    (s * 1_000_000_000 / FLOW_TICK_NS) as u32
}

impl FlowKey {
    /// The key's bytes, exactly as the hash and the kernel's map see them.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8; core::mem::size_of::<FlowKey>()] {
        // SAFETY: FlowKey is repr(C), 40 bytes with no implicit padding.
        unsafe { &*(self as *const FlowKey as *const [u8; core::mem::size_of::<FlowKey>()]) }
    }
}
