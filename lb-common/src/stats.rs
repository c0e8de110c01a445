//! Counters. All are per-CPU arrays, summed by userspace at read time.

/// Packets and bytes, per VIP (`VIP_STATS[vip_id]`) and per backend (`BACKEND_STATS[backend_id]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
    /// Flows scheduled on the ring (flow-table misses, including rescheduled stale flows).
    pub new_flows: u64,
}
assert_layout!(Counter, 24, [packets, bytes, new_flows]);

/// TCP connection attempts per backend and how they went (`HANDSHAKES[backend_id]`), what passive
/// outlier detection judges a backend on. Counted on the packets that carry the signal only:
/// an attempt's SYN, its first retransmission, the client's first ACK.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Handshakes {
    /// New TCP flows scheduled to the backend by a bare SYN.
    pub attempts: u64,
    /// Attempts the client went on to ACK: the backend answered.
    pub answered: u64,
    /// Attempts whose SYN the client had to send again: the backend did not answer in time.
    pub retransmitted: u64,
}
assert_layout!(Handshakes, 24, [attempts, answered, retransmitted]);

/// Indices of `GLOBAL_STATS`: what happened to each packet (exactly one outcome per packet) and
/// flow-table events. Keep `NAMES` in the same order.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Not IPv4/IPv6 (ARP, LLDP, ...): to the kernel untouched.
    PassNotIp = 0,
    /// IP but not addressed to a VIP: to the kernel untouched.
    PassNoVip = 1,
    /// Headers could not be parsed (truncated, lying lengths): to the kernel untouched, which
    /// applies its own validation. Nothing unparsed is ever forwarded.
    PassUnparsed = 2,
    /// IP fragment: to the kernel untouched (no L4 ports to pick a backend with).
    PassFragment = 3,
    /// Encapsulated for a backend whose next hop has no neighbour entry yet: handed to the kernel,
    /// which resolves it and forwards this packet.
    PassNoNeigh = 4,
    /// Forwarded out of the ingress interface.
    Tx = 5,
    /// Forwarded out of another interface.
    Redirect = 6,
    /// The VIP has no backend with weight > 0.
    DropNoBackend = 7,
    /// Encapsulated packet exceeds the egress MTU.
    DropTooBig = 8,
    /// No route to the backend, or forwarding disabled on the ingress interface.
    DropNoRoute = 9,
    /// The packet could not be grown for the outer header.
    DropEncap = 10,
    /// Flow-table hit on a live backend.
    FlowHit = 11,
    /// Flow-table miss (new flow scheduled on the ring).
    FlowMiss = 12,
    /// Flow-table hit on a removed backend: rescheduled.
    FlowStale = 13,
    /// ICMP/ICMPv6 echo request to a VIP address, answered by the load balancer.
    TxEchoReply = 14,
    /// IP fragment to a VIP address: without ports it cannot reach the right backend, and the
    /// kernel has nowhere to deliver it (clients do path MTU discovery: VIP traffic is not
    /// fragmented in practice).
    DropFragment = 15,
    /// ICMP error about a VIP flow, forwarded to the flow's backend (also counted as tx or
    /// redirect).
    IcmpErrorToBackend = 16,
    /// A SYN on a closed flow's tuple: a new connection, rescheduled.
    FlowReopened = 17,
    /// A new flow above its VIP's new-flow rate: forwarded, but not put in the flow table.
    FloodNotInserted = 18,
    /// Too big for the path to its backend once encapsulated: answered with ICMP
    /// "fragmentation needed" / ICMPv6 "packet too big" (DropTooBig when that is not allowed).
    TxIcmpTooBig = 19,
    /// Flow-table hit on a backend marked down by its health checks: rescheduled on the ring
    /// (the server is gone; sticking to it only prolongs the outage).
    FlowBackendDown = 20,
    /// To a VIP address, a TCP header the receiver's kernel would refuse: data offset below 5
    /// words or past the segment's end, or a segment shorter than a header.
    DropBadTcpHeader = 21,
    /// To a VIP address, a UDP header the receiver's kernel would refuse: a segment shorter than
    /// the header, or a UDP length below 8 or past the IP payload.
    DropBadUdpHeader = 22,
    /// To a VIP address, IPv4 options a router or host would refuse (an option without length,
    /// of length 0 or 1, overrunning the header, a Record Route or Timestamp pointer below its
    /// minimum, a Timestamp of length below 4 or with an undefined flag, a short Router Alert,
    /// a second Record Route or Timestamp).
    DropBadIpOptions = 23,
    /// To a VIP address, an IPv6 extension chain a host would refuse: Hop-by-Hop not directly
    /// after the fixed header, an option overrunning its header, more than 7 bytes of padding
    /// or nonzero PadN bytes, more than 8 options in a header, an option whose type says
    /// "discard if unknown" (Jumbo Payload included: no jumbogram fits our links), a Router
    /// Alert of the wrong length, a header running past the payload.
    DropBadIpv6Ext = 24,
    /// To a VIP address, source routing: IPv4 LSRR/SSRR options, or an IPv6 routing header with
    /// segments left (a VIP cannot be a waypoint; type 0 is deprecated by RFC 5095).
    DropSourceRoute = 25,
    /// Flow-table hit of an unanswered connection attempt on an ejected backend: rescheduled.
    FlowEjected = 26,
}

/// Outcomes and events defined so far.
pub const STAT_COUNT: u32 = 27;
/// Entries of the `GLOBAL_STATS` map: room for outcomes added later without a new map layout.
pub const STAT_SLOTS: u32 = 64;

/// Metric-friendly names, indexed by `Stat as usize`.
pub const STAT_NAMES: [&str; STAT_COUNT as usize] = [
    "pass_not_ip",
    "pass_no_vip",
    "pass_unparsed",
    "pass_fragment",
    "pass_no_neigh",
    "tx",
    "redirect",
    "drop_no_backend",
    "drop_too_big",
    "drop_no_route",
    "drop_encap",
    "flow_hit",
    "flow_miss",
    "flow_stale",
    "tx_echo_reply",
    "drop_fragment",
    "icmp_error_to_backend",
    "flow_reopened",
    "flood_not_inserted",
    "tx_icmp_too_big",
    "flow_backend_down",
    "drop_bad_tcp_header",
    "drop_bad_udp_header",
    "drop_bad_ip_options",
    "drop_bad_ipv6_ext",
    "drop_source_route",
    "flow_ejected",
];

impl Stat {
    /// A packet refused as malformed, dropped when it is addressed to a VIP (the kernel of a
    /// router or host on its way would refuse it) and otherwise handed to the kernel untouched.
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            Stat::DropBadTcpHeader
                | Stat::DropBadUdpHeader
                | Stat::DropBadIpOptions
                | Stat::DropBadIpv6Ext
                | Stat::DropSourceRoute
        )
    }
}

/// Indices of the decap program's `DECAP_STATS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapStat {
    /// Not encapsulated, or not for one of our VIPs: untouched.
    Pass = 0,
    /// Outer header removed, inner packet handed to the stack.
    Decapsulated = 1,
    /// Encapsulated for a VIP but the inner header is truncated: dropped.
    DropMalformed = 2,
}

pub const DECAP_STAT_COUNT: u32 = 3;
pub const DECAP_STAT_NAMES: [&str; DECAP_STAT_COUNT as usize] =
    ["pass", "decapsulated", "drop_malformed"];
