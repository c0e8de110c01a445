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
}

pub const STAT_COUNT: u32 = 21;

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
];

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
