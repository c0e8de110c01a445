//! The model: what the fixture configuration and network say must happen to a packet. It
//! parses every input with its own code, not the program's.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, Result};
use lb_userspace::{
    config::{Config, Protocol},
    wire::Prefix,
};

use super::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP,
    refusals::{self, Judgement},
};
use crate::configs;

pub(super) struct VipModel {
    pub(super) addr: IpAddr,
    pub(super) port: u16,
    pub(super) proto: Protocol,
    pub(super) backends: Vec<IpAddr>,
    /// Some backend has weight > 0: new flows have somewhere to go.
    pub(super) schedulable: bool,
}

impl VipModel {
    pub(super) fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

pub(super) struct Model {
    pub(super) vips: Vec<VipModel>,
    /// Addresses with at least one VIP: echo requests to them are answered, fragments dropped.
    pub(super) addresses: Vec<IpAddr>,
    pub(super) encap_v4: Prefix,
    pub(super) encap_v6: Prefix,
}

/// Where a backend is, as the test network namespace (testkit::netns) set it up.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NextHop {
    /// On fx0 with a permanent neighbour entry: x.x.x.11-13.
    Neighbour,
    /// On fx0's subnet without a neighbour entry: the kernel must resolve it.
    NoNeighbour,
    NoRoute,
}

pub(super) fn next_hop(backend: IpAddr) -> NextHop {
    let (on_link, host) = match backend {
        IpAddr::V4(a) => {
            let o = a.octets();
            (o[..3] == [198, 18, 1], o[3])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (s[..4] == [0x2001, 0xdb8, 1, 0], a.octets()[15])
        }
    };
    let neighbour = match backend {
        IpAddr::V4(_) => (11..=13).contains(&host),
        // testkit::netns names them 2001:db8:1::11-13, i.e. hex 0x11-0x13.
        IpAddr::V6(a) => a.segments()[4..7] == [0, 0, 0] && (0x11..=0x13).contains(&host),
    };
    match (on_link, neighbour) {
        (true, true) => NextHop::Neighbour,
        (true, false) => NextHop::NoNeighbour,
        (false, _) => NextHop::NoRoute,
    }
}

/// What the program must do with one input.
#[derive(Clone, Copy, Debug)]
pub(super) enum Expect {
    /// Not the load balancer's business: XDP_PASS, bytes untouched.
    Untouched,
    /// For a VIP: balanced toward the flow's backend.
    Balance(Balanced),
    /// An echo request to a VIP address: answered in place.
    Echo(EchoRequest),
    /// A fragment to a VIP address: dropped.
    Drop,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Balanced {
    pub(super) vip: usize,
    /// The flow's client side (for an ICMP error, the quoted packet's destination).
    pub(super) client: SocketAddr,
    /// IP length of the input (header and payload, not Ethernet padding).
    pub(super) ip_len: usize,
    /// An ICMP error about the flow rather than the flow's own packet.
    pub(super) icmp_error: bool,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct EchoRequest {
    pub(super) v4: bool,
    /// Frame offset of the ICMP header.
    pub(super) icmp_off: usize,
    /// Frame offset of the IP packet's end.
    pub(super) ip_end: usize,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Verdict {
    pub(super) expect: Expect,
    /// Passing the packet untouched is acceptable too.
    pub(super) or_untouched: bool,
    /// Dropping it is acceptable too.
    pub(super) or_drop: bool,
    /// What kind of input it is, for the failure message and the coverage tally.
    pub(super) class: &'static str,
}

impl Verdict {
    fn must(expect: Expect, class: &'static str) -> Verdict {
        Verdict {
            expect,
            or_untouched: false,
            or_drop: false,
            class,
        }
    }

    fn untouched(class: &'static str) -> Verdict {
        Verdict::must(Expect::Untouched, class)
    }

    /// The program may also hand the packet to the kernel untouched (see `refusals`).
    fn or_kernel(self, may: bool) -> Verdict {
        Verdict {
            or_untouched: self.or_untouched || may,
            ..self
        }
    }
}

/// The layer-3 facts `transport` and `icmp` need.
struct L3 {
    v4: bool,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    /// Frame offsets of the transport header and of the IP packet's end.
    l4_off: usize,
    end: usize,
    /// IPv4 options or IPv6 extension headers present.
    extras: bool,
}

pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn v4_at(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

pub(super) fn v6_at(b: &[u8], at: usize) -> IpAddr {
    let o: [u8; 16] = b[at..at + 16].try_into().unwrap();
    IpAddr::V6(Ipv6Addr::from(o))
}

pub(super) fn prefix_contains(p: &Prefix, a: IpAddr) -> bool {
    a.is_ipv4() == p.addr.is_ipv4()
        && Prefix {
            addr: a,
            len: p.len,
        }
        .masked()
            == p.addr
}

impl Model {
    pub(super) fn new() -> Result<Model> {
        let cfg = Config::parse(configs::text(configs::FIXTURE))?;
        let mut addresses: Vec<IpAddr> = cfg.vips.iter().map(|v| v.address).collect();
        addresses.sort();
        addresses.dedup();
        Ok(Model {
            vips: cfg
                .vips
                .iter()
                .map(|v| VipModel {
                    addr: v.address,
                    port: v.port,
                    proto: v.protocol,
                    backends: v.backends.iter().map(|b| b.address).collect(),
                    schedulable: v.backends.iter().any(|b| b.weight > 0),
                })
                .collect(),
            addresses,
            encap_v4: cfg
                .dataplane
                .encap_source_v4
                .context("the fixture configuration sets encap_source_v4")?,
            encap_v6: cfg
                .dataplane
                .encap_source_v6
                .context("the fixture configuration sets encap_source_v6")?,
        })
    }

    fn vip(&self, addr: IpAddr, port: u16, proto: u8) -> Option<usize> {
        self.vips
            .iter()
            .position(|v| v.addr == addr && v.port == port && v.proto.number() == proto)
    }

    fn is_vip_address(&self, a: IpAddr) -> bool {
        self.addresses.contains(&a)
    }

    pub(super) fn addresses_of(&self, v4: bool) -> Vec<IpAddr> {
        self.addresses
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == v4)
            .collect()
    }

    pub(super) fn ports_of(&self, addr: IpAddr) -> Vec<u16> {
        self.vips
            .iter()
            .filter(|v| v.addr == addr)
            .map(|v| v.port)
            .collect()
    }

    /// What must happen to frame `f`.
    pub(super) fn classify(&self, f: &[u8]) -> Verdict {
        if f.len() < ETH_HLEN {
            return Verdict::untouched("runt");
        }
        match be16(f, 12) {
            ETH_P_IP => self.classify_v4(f),
            ETH_P_IPV6 => self.classify_v6(f),
            _ => Verdict::untouched("not-ip"),
        }
    }

    fn classify_v4(&self, f: &[u8]) -> Verdict {
        let ip = &f[ETH_HLEN..];
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return Verdict::untouched("malformed-ipv4-header");
        }
        let ihl = (ip[0] & 0x0F) as usize * 4;
        let tot = be16(ip, 2) as usize;
        if ihl < 20 || tot < ihl || tot > ip.len() {
            return Verdict::untouched("malformed-ipv4-lengths");
        }
        let dst = v4_at(ip, 16);
        // Options are judged before anything else, fragments included.
        let options = if ihl > 20 && ihl <= ip.len() {
            refusals::ipv4_options(&ip[20..ihl], ip.len() - ihl)
        } else if ihl > 20 {
            Judgement::Kernel
        } else {
            Judgement::Fine
        };
        if options.refused() || options == Judgement::Kernel {
            return self.refused(dst, options, "ipv4-options-refused");
        }
        if be16(ip, 6) & 0x3FFF != 0 {
            return self.fragment(dst).or_kernel(options.or_kernel());
        }
        self.transport(
            f,
            L3 {
                v4: true,
                src: v4_at(ip, 12),
                dst,
                proto: ip[9],
                l4_off: ETH_HLEN + ihl,
                end: ETH_HLEN + tot,
                extras: ihl > 20,
            },
        )
        .or_kernel(options.or_kernel())
    }

    fn classify_v6(&self, f: &[u8]) -> Verdict {
        let ip = &f[ETH_HLEN..];
        if ip.len() < 40 || ip[0] >> 4 != 6 {
            return Verdict::untouched("malformed-ipv6-header");
        }
        let end = 40 + be16(ip, 4) as usize;
        if end > ip.len() {
            return Verdict::untouched("malformed-ipv6-length");
        }
        let dst = v6_at(ip, 24);
        let (chain, next, off) = refusals::ipv6_chain(ip, end);
        if chain.refused() || chain == Judgement::Kernel {
            return self.refused(dst, chain, "ipv6-extension-chain-refused");
        }
        if next == IPPROTO_FRAGMENT {
            return self.fragment(dst).or_kernel(chain.or_kernel());
        }
        self.transport(
            f,
            L3 {
                v4: false,
                src: v6_at(ip, 8),
                dst,
                proto: next,
                l4_off: ETH_HLEN + off,
                end: ETH_HLEN + end,
                extras: off > 40,
            },
        )
        .or_kernel(chain.or_kernel())
    }

    /// A packet a router or host would refuse (`j` says how sure the model is): dropped when it
    /// is addressed to a VIP address, the kernel's otherwise.
    fn refused(&self, dst: IpAddr, j: Judgement, class: &'static str) -> Verdict {
        if j == Judgement::Kernel {
            return Verdict::untouched("handed-to-the-kernel");
        }
        if self.is_vip_address(dst) {
            Verdict::must(Expect::Drop, class).or_kernel(j.or_kernel())
        } else {
            Verdict::untouched("refused-not-to-a-vip-address")
        }
    }

    fn fragment(&self, dst: IpAddr) -> Verdict {
        if self.is_vip_address(dst) {
            Verdict::must(Expect::Drop, "fragment-to-vip-address")
        } else {
            Verdict::untouched("fragment")
        }
    }

    fn transport(&self, f: &[u8], l3: L3) -> Verdict {
        let l4 = &f[l3.l4_off..l3.end];
        match l3.proto {
            IPPROTO_TCP | IPPROTO_UDP => {}
            IPPROTO_ICMP if l3.v4 => return self.icmp(f, &l3),
            IPPROTO_ICMPV6 if !l3.v4 => return self.icmp(f, &l3),
            _ => return Verdict::untouched("other-protocol"),
        }
        let header = refusals::transport(l3.proto, l4, f.len() - l3.l4_off);
        if header != Judgement::Fine {
            return self.refused(l3.dst, header, "malformed-l4-header");
        }
        let (sport, dport) = (be16(l4, 0), be16(l4, 2));
        match self.vip(l3.dst, dport, l3.proto) {
            Some(vip) => Verdict::must(
                Expect::Balance(Balanced {
                    vip,
                    client: SocketAddr::new(l3.src, sport),
                    ip_len: l3.end - ETH_HLEN,
                    icmp_error: false,
                }),
                if l3.proto == IPPROTO_TCP {
                    "tcp-to-vip"
                } else {
                    "udp-to-vip"
                },
            ),
            None => Verdict::untouched("tcp-udp-not-a-vip"),
        }
    }

    fn icmp(&self, f: &[u8], l3: &L3) -> Verdict {
        let m = &f[l3.l4_off..l3.end];
        if m.len() < 8 {
            return Verdict::untouched("malformed-icmp-truncated");
        }
        let (echo, error) = if l3.v4 {
            (m[0] == 8, matches!(m[0], 3 | 11))
        } else {
            (m[0] == 128, matches!(m[0], 1..=3))
        };
        if echo {
            if !self.is_vip_address(l3.dst) {
                return Verdict::untouched("echo-not-to-vip-address");
            }
            if l3.v4 && l3.extras {
                // Documented: the program leaves IPv4 echo requests with options to the kernel.
                return Verdict::untouched("echo-to-vip-address-with-ipv4-options");
            }
            return Verdict {
                expect: Expect::Echo(EchoRequest {
                    v4: l3.v4,
                    icmp_off: l3.l4_off,
                    ip_end: l3.end,
                }),
                // Answering past IPv6 extension headers (a routing header, say) is debatable;
                // either answer is fine.
                or_untouched: l3.extras,
                or_drop: false,
                class: "echo-to-vip-address",
            };
        }
        if !error {
            return Verdict::untouched("icmp-other");
        }
        // The quoted packet: the start of what the VIP sent (source VIP, destination client). Its
        // IP header and its ports must lie inside this packet's IP length.
        let q = &m[8..];
        let (qsrc, qdst, qproto, ports) = if l3.v4 {
            if q.len() < 20 || q[0] >> 4 != 4 || (q[0] & 0x0F) < 5 {
                return Verdict::untouched("malformed-icmp-error-quote");
            }
            (v4_at(q, 12), v4_at(q, 16), q[9], (q[0] & 0x0F) as usize * 4)
        } else {
            if q.len() < 40 || q[0] >> 4 != 6 {
                return Verdict::untouched("malformed-icmp-error-quote");
            }
            (v6_at(q, 8), v6_at(q, 24), q[6], 40)
        };
        if !matches!(qproto, IPPROTO_TCP | IPPROTO_UDP) {
            return Verdict::untouched("icmp-error-about-other-protocol");
        }
        if q.len() < ports + 4 {
            return Verdict::untouched("malformed-icmp-error-quote-ports");
        }
        let (qsport, qdport) = (be16(q, ports), be16(q, ports + 2));
        match self.vip(qsrc, qsport, qproto) {
            Some(vip) => Verdict::must(
                Expect::Balance(Balanced {
                    vip,
                    client: SocketAddr::new(qdst, qdport),
                    ip_len: l3.end - ETH_HLEN,
                    icmp_error: true,
                }),
                "icmp-error-about-vip-flow",
            ),
            None => Verdict::untouched("icmp-error-not-about-a-vip"),
        }
    }
}
