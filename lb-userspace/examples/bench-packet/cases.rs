//! The benchmark cases: what goes in, what must come out, and the budget for each. Names
//! follow the Linux selftests' XDP load-balancer benchmark (`bench_xdp_lb`, derived from Katran)
//! where a scenario corresponds, so figures compare one to one.
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lb_common::stats::Stat;
use lb_userspace::{
    config::Protocol,
    testkit::{
        lb::{XDP_DROP, XDP_PASS},
        packets::{self, Tcp},
    },
};

/// The VIPs and backends every case runs against (`bench.toml`), through the daemon's own config
/// parser. The flow table and the rings take the daemon's defaults (1M flows, M = 65537), as in
/// production.
pub const CONFIG: &str = include_str!("bench.toml");

const VIP4: SocketAddr = vip(IpAddr::V4(Ipv4Addr::new(198, 18, 100, 1)), 80);
const VIP4_UDP: SocketAddr = vip(IpAddr::V4(Ipv4Addr::new(198, 18, 100, 1)), 53);
const VIP6: SocketAddr = vip(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1)),
    80,
);
const VIP6_UDP: SocketAddr = vip(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1)),
    53,
);
const VIP4_TO_V6: SocketAddr = vip(IpAddr::V4(Ipv4Addr::new(198, 18, 100, 2)), 80);

/// Client addresses come from a counter over this many values: the "16M-flow space" of the
/// reference benchmark's miss case.
pub const CLIENT_SPACE: u64 = 1 << 24;
/// The `-diverse` variant's source addresses.
const DIVERSE_CLIENTS: u32 = 4096;

const fn vip(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// The budget for a case's net cost on this machine kind.
#[derive(Clone, Copy)]
pub struct Target {
    pub what: &'static str,
    pub ns: f64,
}

const PASS_BUDGET: Target = Target {
    what: "non-VIP pass",
    ns: 70.0,
};
const HIT_BUDGET: Target = Target {
    what: "flow-table hit",
    ns: 200.0,
};
const SAME_SYN_BUDGET: Target = Target {
    what: "SYN same tuple",
    ns: 300.0,
};
const MISS_BUDGET: Target = Target {
    what: "SYN new tuple",
    ns: 470.0,
};

pub enum Traffic {
    /// The same packet every call, handled without touching the flow table (pass or drop).
    Fixed {
        packet: Vec<u8>,
        action: u32,
        outcome: Stat,
    },
    /// Established flows: each flow's first packet (a SYN for TCP) goes in untimed, then every
    /// call is a later packet of one of them (a TCP ACK or another datagram), cycling over
    /// `flows` flows. Every call must hit the flow table.
    Established {
        proto: Protocol,
        vip: SocketAddr,
        flows: u32,
    },
    /// The same TCP SYN every call: the first misses and inserts, the others find the flow open
    /// and follow it, like an ACK (a SYN on an open flow is a retransmission; only one on a
    /// closing flow is a new connection). Katran instead sends every SYN through the hash and
    /// rewrites the entry, which is why the issue budgets this case above a hit.
    SameSyn { vip: SocketAddr },
    /// The first packet of a new flow every call, from a client never seen before: every call
    /// misses, hashes, picks a ring slot and inserts. With `full`, the flow table is filled
    /// first (untimed), so that every insert also evicts: the steady state under churn. Without,
    /// the table is cold and large enough that nothing is evicted.
    NewFlows {
        proto: Protocol,
        vip: SocketAddr,
        full: bool,
    },
}

pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    pub target: Option<Target>,
    pub traffic: Traffic,
}

impl Case {
    /// Whether the case's calls look up the flow table (all but pass and drop).
    pub fn uses_flow_table(&self) -> bool {
        !matches!(self.traffic, Traffic::Fixed { .. })
    }
}

impl Traffic {
    /// The packet of call `i` (counting warm-up calls: a new-flow case never repeats a client).
    pub fn packet<'a>(&'a self, i: u64, cycle: &'a [Vec<u8>]) -> Cow<'a, [u8]> {
        match self {
            Traffic::Fixed { packet, .. } => Cow::Borrowed(packet),
            Traffic::Established { .. } | Traffic::SameSyn { .. } => {
                Cow::Borrowed(&cycle[(i % cycle.len() as u64) as usize])
            }
            Traffic::NewFlows { proto, vip, .. } => {
                Cow::Owned(first_packet(*proto, client(i, vip), *vip))
            }
        }
    }
}

/// All cases, in the order they run and print.
pub fn all() -> Vec<Case> {
    let est = |proto, vip, flows| Traffic::Established { proto, vip, flows };
    let new = |proto, vip| Traffic::NewFlows {
        proto,
        vip,
        full: false,
    };
    let host4 = SocketAddr::from(([198, 18, 1, 1], 22));
    let host6 = SocketAddr::new("2001:db8:1::1".parse().unwrap(), 22);
    vec![
        fixed(
            "pass-non-ip",
            "ARP request",
            // Broadcast, not IP: the cheapest way through the program.
            packets::arp_request([10, 0, 0, 1], [198, 18, 1, 1]),
            XDP_PASS,
            Stat::PassNotIp,
        ),
        fixed(
            "pass-v4-no-vip",
            "TCP ACK to the host's own IPv4 address",
            packets::tcp(client(0, &host4), host4, Tcp::Ack, b""),
            XDP_PASS,
            Stat::PassNoVip,
        ),
        fixed(
            "pass-v6-no-vip",
            "TCP ACK to the host's own IPv6 address",
            packets::tcp(client(0, &host6), host6, Tcp::Ack, b""),
            XDP_PASS,
            Stat::PassNoVip,
        ),
        Case {
            name: "drop-v4-frag",
            about: "IPv4 first fragment to a VIP: dropped (no ports, no backend)",
            target: None,
            traffic: Traffic::Fixed {
                packet: packets::first_fragment(packets::tcp(
                    client(0, &VIP4),
                    VIP4,
                    Tcp::Ack,
                    b"",
                )),
                action: XDP_DROP,
                outcome: Stat::DropFragment,
            },
        },
        hit(
            "tcp-v4-lru-hit",
            "TCP ACK, IPv4, established",
            est(Protocol::Tcp, VIP4, 1),
        ),
        hit(
            "tcp-v6-lru-hit",
            "TCP ACK, IPv6, established",
            est(Protocol::Tcp, VIP6, 1),
        ),
        hit(
            "udp-v4-lru-hit",
            "UDP, IPv4, known flow",
            est(Protocol::Udp, VIP4_UDP, 1),
        ),
        hit(
            "udp-v6-lru-hit",
            "UDP, IPv6, known flow",
            est(Protocol::Udp, VIP6_UDP, 1),
        ),
        hit(
            "tcp-v4v6-lru-hit",
            "TCP ACK, IPv4 VIP, IPv6 backend",
            est(Protocol::Tcp, VIP4_TO_V6, 1),
        ),
        hit(
            "tcp-v4-lru-hit-diverse",
            "TCP ACK, IPv4, 4096 established flows in turn",
            est(Protocol::Tcp, VIP4, DIVERSE_CLIENTS),
        ),
        Case {
            name: "tcp-v4-syn-same-tuple",
            about: "the same TCP SYN, IPv4: after the first, flow-table hits",
            target: Some(SAME_SYN_BUDGET),
            traffic: Traffic::SameSyn { vip: VIP4 },
        },
        Case {
            name: "tcp-v6-syn-same-tuple",
            about: "the same TCP SYN, IPv6: after the first, flow-table hits",
            target: Some(SAME_SYN_BUDGET),
            traffic: Traffic::SameSyn { vip: VIP6 },
        },
        miss(
            "tcp-v4-lru-miss",
            "TCP SYN, IPv4, new client each",
            new(Protocol::Tcp, VIP4),
        ),
        miss(
            "tcp-v6-lru-miss",
            "TCP SYN, IPv6, new client each",
            new(Protocol::Tcp, VIP6),
        ),
        miss(
            "tcp-v4-lru-miss-full",
            "TCP SYN, IPv4, new client each, table full",
            Traffic::NewFlows {
                proto: Protocol::Tcp,
                vip: VIP4,
                full: true,
            },
        ),
        miss(
            "udp-v4-lru-miss",
            "UDP, IPv4, new client each",
            new(Protocol::Udp, VIP4_UDP),
        ),
    ]
}

fn fixed(
    name: &'static str,
    about: &'static str,
    packet: Vec<u8>,
    action: u32,
    outcome: Stat,
) -> Case {
    Case {
        name,
        about,
        target: Some(PASS_BUDGET).filter(|_| action == XDP_PASS),
        traffic: Traffic::Fixed {
            packet,
            action,
            outcome,
        },
    }
}

fn hit(name: &'static str, about: &'static str, traffic: Traffic) -> Case {
    Case {
        name,
        about,
        target: Some(HIT_BUDGET),
        traffic,
    }
}

fn miss(name: &'static str, about: &'static str, traffic: Traffic) -> Case {
    Case {
        name,
        about,
        target: Some(MISS_BUDGET),
        traffic,
    }
}

/// Client `i` of a family's client space: 10.0.0.0/8 or 2001:db8:ff::/104, the address taken
/// straight from the counter (so 16M clients are all distinct) and the port varied with it.
pub fn client(i: u64, toward: &SocketAddr) -> SocketAddr {
    let n = (i % CLIENT_SPACE) as u32;
    let port = 1024 + (n % 64_000) as u16;
    let ip = match toward {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | n)),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_00ff_0000_0000_0000_0000_0000u128 | n as u128,
        )),
    };
    SocketAddr::new(ip, port)
}

/// A flow's first packet: a TCP SYN, or a UDP datagram.
pub fn first_packet(proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match proto {
        Protocol::Tcp => packets::tcp(src, dst, Tcp::Syn, b""),
        Protocol::Udp => udp(src, dst),
    }
}

/// A later packet of an established flow: a TCP ACK, or another datagram.
pub fn later_packet(proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match proto {
        Protocol::Tcp => packets::tcp(src, dst, Tcp::Ack, b""),
        Protocol::Udp => udp(src, dst),
    }
}

fn udp(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    packets::udp(src, dst, b"0123456789abcdef")
}
