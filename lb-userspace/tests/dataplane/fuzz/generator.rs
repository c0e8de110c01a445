//! Random inputs: the generator of a case from (seed, index), and random packets from
//! scratch.
use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use lb_userspace::testkit::{
    lb::Ingress,
    netns::{CLIENT_MAC, FX_MTU, LB_MAC},
    packets,
};
use rand::{Rng, rngs::SmallRng, seq::IndexedRandom};

use super::{
    ETH_HLEN, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_ROUTING,
    IPPROTO_TCP, IPPROTO_UDP, IPV6_MAX_EXT, MAX_FRAME,
    model::Model,
    mutators::{clamp_frame, mutate},
    seeds::{Seed, set_icmpv6_checksum},
    settings::case_rng,
};

/// One generated input.
pub(super) struct Case {
    pub(super) input: Vec<u8>,
    pub(super) ingress: Ingress,
    /// How it was made (strategy, seed packet, mutations), for the failure report.
    pub(super) origin: String,
}

/// Makes the cases: 55% mutated seeds, 40% random packets with random header fields (often
/// addressed to a VIP, often with consistent lengths so they get past parsing), 5% random bytes.
pub(super) struct Generator<'a> {
    pub(super) model: &'a Model,
    pub(super) seeds: &'a [Seed],
}

impl Generator<'_> {
    pub(super) fn case(&self, seed: u64, index: u64) -> Case {
        let mut rng = case_rng(seed, index);
        let ingress = if rng.random_bool(0.5) {
            Ingress::Fx0
        } else {
            Ingress::Lo
        };
        let roll = rng.random_range(0..100);
        let (input, origin) = if roll < 55 {
            self.mutated(&mut rng)
        } else if roll < 95 {
            let mut desc = String::from("random packet:");
            let p = self.random_packet(&mut rng, &mut desc);
            (p, desc)
        } else {
            self.random_bytes(&mut rng)
        };
        Case {
            input: clamp_frame(input),
            ingress,
            origin,
        }
    }

    fn mutated(&self, rng: &mut SmallRng) -> (Vec<u8>, String) {
        let seed = self.seeds.choose(rng).expect("seeds");
        let mut p = seed.bytes.clone();
        let mut desc = format!("seed `{}`, mutations:", seed.name);
        // Mostly one or two mutations: a packet that is almost right probes each check alone.
        let n = *[1, 1, 1, 2, 2, 3, 4].choose(rng).unwrap();
        for _ in 0..n {
            mutate(rng, self.model, &mut p, &mut desc);
        }
        (p, desc)
    }

    fn random_bytes(&self, rng: &mut SmallRng) -> (Vec<u8>, String) {
        let len = rng.random_range(ETH_HLEN..=MAX_FRAME);
        let mut p = vec![0u8; len];
        rng.fill(&mut p[..]);
        let t = random_ether_type(rng);
        p[12..14].copy_from_slice(&t.to_be_bytes());
        (p, format!("random bytes, Ethernet type {t:#06x}"))
    }

    /// A random packet with random header fields: plausible enough to get deep into the parser
    /// most of the time, with a lie somewhere some of the time.
    fn random_packet(&self, rng: &mut SmallRng, desc: &mut String) -> Vec<u8> {
        // Aimed at a VIP a third of the time (its address, port and protocol), so the VIP path
        // sees random headers around a valid tuple; otherwise every field is drawn on its own.
        let aimed = rng
            .random_bool(0.35)
            .then(|| self.model.vips.choose(rng).unwrap());
        let v4 = aimed.map_or_else(|| rng.random_bool(0.55), |v| v.addr.is_ipv4());
        let dst = aimed.map_or_else(|| random_dst(rng, self.model, v4), |v| v.addr);
        let src = random_client(rng, v4);
        let proto = aimed.map_or_else(|| random_proto(rng, v4), |v| v.proto.number());
        let _ = write!(desc, " {src} -> {dst} proto {proto}");
        let l4 = match proto {
            IPPROTO_TCP | IPPROTO_UDP => {
                let dport = aimed.map_or_else(|| self.random_port(rng, dst), |v| v.port);
                self.random_transport(rng, proto, dport)
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 if (proto == IPPROTO_ICMP) == v4 => {
                self.random_icmp(rng, v4, desc)
            }
            _ => random_body(rng, 0),
        };
        let mut f = Vec::with_capacity(ETH_HLEN + 80 + l4.len());
        if rng.random_bool(0.9) {
            f.extend_from_slice(&LB_MAC);
            f.extend_from_slice(&CLIENT_MAC);
        } else {
            f.extend(random_vec(rng, 12));
        }
        let ether_type = match rng.random_range(0..100) {
            0..95 if v4 => ETH_P_IP,
            0..95 => ETH_P_IPV6,
            _ => random_ether_type(rng),
        };
        f.extend_from_slice(&ether_type.to_be_bytes());
        if v4 {
            random_ipv4(rng, &mut f, src, dst, proto, &l4, desc);
        } else {
            random_ipv6(rng, &mut f, src, dst, proto, &l4, desc);
        }
        // ICMPv6 checksums need the final layout (extension headers, lengths).
        if proto == IPPROTO_ICMPV6 && !v4 && rng.random_bool(0.9) {
            let off = f.len() - l4.len();
            set_icmpv6_checksum(&mut f, off);
        }
        if rng.random_bool(0.2) {
            // Ethernet padding / trailing bytes beyond the IP length.
            let n = rng.random_range(1..=48);
            if rng.random_bool(0.5) {
                f.resize(f.len() + n, 0);
            } else {
                f.extend(random_vec(rng, n));
            }
            let _ = write!(desc, ", {n} trailing bytes");
        }
        f
    }

    fn random_port(&self, rng: &mut SmallRng, addr: IpAddr) -> u16 {
        let ports = self.model.ports_of(addr);
        if !ports.is_empty() && rng.random_bool(0.75) {
            *ports.choose(rng).unwrap()
        } else if rng.random_bool(0.3) {
            *[80, 53, 443, 22, 0, 65535].choose(rng).unwrap()
        } else {
            rng.random()
        }
    }

    fn random_transport(&self, rng: &mut SmallRng, proto: u8, dport: u16) -> Vec<u8> {
        let mut h = if proto == IPPROTO_TCP {
            let opt_words = if rng.random_bool(0.2) {
                rng.random_range(1..=10)
            } else {
                0
            };
            let mut h = random_vec(rng, 20 + opt_words * 4);
            let doff = if rng.random_bool(0.85) {
                5 + opt_words as u8
            } else {
                rng.random_range(0..16)
            };
            h[12] = doff << 4 | (h[12] & 0x0F);
            h[13] = *[0x02, 0x10, 0x12, 0x11, 0x04, 0x18, rng.random()]
                .choose(rng)
                .unwrap();
            h
        } else {
            random_vec(rng, 8)
        };
        h[0..2].copy_from_slice(&rng.random::<u16>().to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        let payload = random_body(rng, h.len() + 40);
        if proto == IPPROTO_UDP {
            let len = if rng.random_bool(0.85) {
                (8 + payload.len()) as u16
            } else {
                rng.random()
            };
            h[4..6].copy_from_slice(&len.to_be_bytes());
        }
        h.extend(payload);
        h
    }

    fn random_icmp(&self, rng: &mut SmallRng, v4: bool, desc: &mut String) -> Vec<u8> {
        let roll = rng.random_range(0..100);
        let mut m = random_vec(rng, 8);
        if roll < 35 {
            m[0] = if v4 { 8 } else { 128 };
            m[1] = if rng.random_bool(0.9) {
                0
            } else {
                rng.random()
            };
            m.extend(random_body(rng, 48));
            desc.push_str(" echo request");
        } else if roll < 80 {
            m[0] = *(if v4 { &[3u8, 11][..] } else { &[1u8, 2, 3][..] })
                .choose(rng)
                .unwrap();
            m[1] = rng.random_range(0..6);
            m.extend(self.random_quote(rng, v4, desc));
        } else {
            m[0] = rng.random();
            m.extend(random_body(rng, 48));
            let _ = write!(desc, " icmp type {}", m[0]);
        }
        if v4 && rng.random_bool(0.9) {
            m[2..4].copy_from_slice(&[0, 0]);
            let ck = packets::checksum(&m);
            m[2..4].copy_from_slice(&ck.to_be_bytes());
        }
        m
    }

    /// The quoted packet of an ICMP error: mostly the start of a packet a VIP sent to a client.
    fn random_quote(&self, rng: &mut SmallRng, v4: bool, desc: &mut String) -> Vec<u8> {
        let qv4 = if rng.random_bool(0.9) { v4 } else { !v4 };
        let src = if rng.random_bool(0.75) {
            *self.model.addresses_of(qv4).choose(rng).unwrap()
        } else {
            random_client(rng, qv4)
        };
        let dst = random_client(rng, qv4);
        let proto = match rng.random_range(0..10) {
            0..5 => IPPROTO_TCP,
            5..9 => IPPROTO_UDP,
            _ => rng.random(),
        };
        let sport = self.random_port(rng, src);
        let mut l4 = random_vec(rng, 8);
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        let mut q = Vec::new();
        if qv4 {
            let ihl = if rng.random_bool(0.9) {
                5
            } else {
                rng.random_range(0..16)
            };
            let mut h = random_vec(rng, (ihl as usize * 4).max(20));
            h[0] = 0x40 | ihl;
            h[9] = proto;
            h[12..16].copy_from_slice(&ip_bytes(src));
            h[16..20].copy_from_slice(&ip_bytes(dst));
            q.extend(h);
        } else {
            let mut h = random_vec(rng, 40);
            h[0] = 0x60 | (h[0] & 0x0F);
            h[6] = proto;
            h[8..24].copy_from_slice(&ip_bytes(src));
            h[24..40].copy_from_slice(&ip_bytes(dst));
            q.extend(h);
        }
        q.extend(l4);
        if rng.random_bool(0.3) {
            q.extend(random_body(rng, 80));
        }
        if rng.random_bool(0.15) {
            let keep = rng.random_range(0..=q.len());
            q.truncate(keep);
        }
        let _ = write!(
            desc,
            " icmp error quoting {src}:{sport} -> {dst} proto {proto} ({} bytes)",
            q.len()
        );
        q
    }
}

/// An IP protocol / next header: mostly TCP, UDP and ICMP, sometimes one the parser must walk
/// past or leave alone.
fn random_proto(rng: &mut SmallRng, v4: bool) -> u8 {
    match rng.random_range(0..100) {
        0..35 => IPPROTO_TCP,
        35..60 => IPPROTO_UDP,
        60..85 if v4 => IPPROTO_ICMP,
        60..85 => IPPROTO_ICMPV6,
        _ => *[
            IPPROTO_IPIP,
            IPPROTO_IPV6,
            IPPROTO_FRAGMENT,
            IPPROTO_HOPOPTS,
            IPPROTO_ROUTING,
            IPPROTO_DSTOPTS,
            IPPROTO_ICMP,
            IPPROTO_ICMPV6,
            50,
            59,
            132,
            rng.random(),
        ]
        .choose(rng)
        .unwrap(),
    }
}

/// A destination: mostly a VIP address, else a near miss (the VIP range, the backends' subnet)
/// or anything.
pub(super) fn random_dst(rng: &mut SmallRng, model: &Model, v4: bool) -> IpAddr {
    let roll = rng.random_range(0..100);
    if roll < 60 {
        return *model.addresses_of(v4).choose(rng).unwrap();
    }
    if v4 {
        let o = match roll {
            60..75 => [198, 18, 100, rng.random()],
            75..85 => [198, 18, 1, rng.random()],
            _ => rng.random(),
        };
        Ipv4Addr::from(o).into()
    } else {
        let mut o: [u8; 16] = match roll {
            60..75 => "2001:db8:100::".parse::<Ipv6Addr>().unwrap().octets(),
            75..85 => "2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets(),
            _ => rng.random(),
        };
        if roll < 85 {
            o[15] = rng.random();
        }
        Ipv6Addr::from(o).into()
    }
}

pub(super) fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(super) fn random_vec(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

pub(super) fn random_client(rng: &mut SmallRng, v4: bool) -> IpAddr {
    if v4 {
        let o = if rng.random_bool(0.8) {
            [198, 18, 0, rng.random()]
        } else {
            rng.random()
        };
        Ipv4Addr::from(o).into()
    } else {
        let mut o = "2001:db8::".parse::<Ipv6Addr>().unwrap().octets();
        if rng.random_bool(0.8) {
            o[14] = rng.random();
            o[15] = rng.random();
        } else {
            o = rng.random();
        }
        Ipv6Addr::from(o).into()
    }
}

pub(super) fn random_ether_type(rng: &mut SmallRng) -> u16 {
    match rng.random_range(0..100) {
        0..45 => ETH_P_IP,
        45..85 => ETH_P_IPV6,
        85..90 => ETH_P_ARP,
        90..95 => ETH_P_8021Q,
        _ => rng.random(),
    }
}

/// Random bytes of a [`body_len`] length.
fn random_body(rng: &mut SmallRng, overhead: usize) -> Vec<u8> {
    let n = body_len(rng, overhead);
    random_vec(rng, n)
}

/// A payload length: mostly small, sometimes large, sometimes putting the IP packet (with
/// `overhead` bytes of headers) right around the MTU once encapsulated.
fn body_len(rng: &mut SmallRng, overhead: usize) -> usize {
    match rng.random_range(0..100) {
        0..60 => rng.random_range(0..=32),
        60..85 => rng.random_range(0..=600),
        _ => rng
            .random_range(FX_MTU - 64..=FX_MTU + 8)
            .saturating_sub(overhead),
    }
}

fn random_ipv4(
    rng: &mut SmallRng,
    f: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
    desc: &mut String,
) {
    let opt_words = if rng.random_bool(0.15) {
        rng.random_range(1..=10)
    } else {
        0
    };
    let mut h = random_vec(rng, 20 + opt_words * 4);
    h[0] = 0x45 + opt_words as u8;
    let tot = (h.len() + l4.len()) as u16;
    h[2..4].copy_from_slice(&tot.to_be_bytes());
    let frag: u16 = match rng.random_range(0..100) {
        0..60 => 0x4000,
        60..92 => 0,
        92..96 => 0x2000,
        _ => rng.random::<u16>() & 0x3FFF,
    };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[9] = proto;
    h[12..16].copy_from_slice(&ip_bytes(src));
    h[16..20].copy_from_slice(&ip_bytes(dst));
    if opt_words > 0 {
        let _ = write!(desc, ", {} bytes of ipv4 options", opt_words * 4);
    }
    if frag & 0x3FFF != 0 {
        let _ = write!(desc, ", fragment {frag:#06x}");
    }
    // A lie, sometimes: the parser must not trust these fields.
    match rng.random_range(0..100) {
        0..4 => {
            h[0] = (h[0] & 0x0F) | rng.random::<u8>() << 4;
            let _ = write!(desc, ", version {}", h[0] >> 4);
        }
        4..8 => {
            h[0] = 0x40 | rng.random_range(0..16);
            let _ = write!(desc, ", ihl {}", h[0] & 0x0F);
        }
        8..14 => {
            let t: u16 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => tot.wrapping_add(rng.random_range(1..=8)),
                _ => tot.saturating_sub(rng.random_range(1..=8)),
            };
            h[2..4].copy_from_slice(&t.to_be_bytes());
            let _ = write!(desc, ", total length {t} (true {tot})");
        }
        _ => {}
    }
    h[10..12].copy_from_slice(&[0, 0]);
    if rng.random_bool(0.95) {
        let ck = packets::checksum(&h);
        h[10..12].copy_from_slice(&ck.to_be_bytes());
    }
    f.extend(h);
    f.extend_from_slice(l4);
}

fn random_ipv6(
    rng: &mut SmallRng,
    f: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
    desc: &mut String,
) {
    // Extension headers, sometimes: the ones the program walks, more of them than it walks, and
    // fragment headers, chained properly (each one's first byte names the next).
    let mut kinds: Vec<u8> = Vec::new();
    let mut ext_bytes: Vec<u8> = Vec::new();
    if rng.random_bool(0.2) {
        for _ in 0..rng.random_range(1..=IPV6_MAX_EXT + 1) {
            kinds.push(
                *[
                    IPPROTO_HOPOPTS,
                    IPPROTO_ROUTING,
                    IPPROTO_DSTOPTS,
                    IPPROTO_DSTOPTS,
                    IPPROTO_FRAGMENT,
                ]
                .choose(rng)
                .unwrap(),
            );
        }
        for (i, &kind) in kinds.iter().enumerate() {
            let units = if kind == IPPROTO_FRAGMENT {
                0
            } else {
                rng.random_range(0..=2)
            };
            let mut h = random_vec(rng, (units + 1) * 8);
            h[0] = kinds.get(i + 1).copied().unwrap_or(proto);
            h[1] = units as u8;
            ext_bytes.extend(h);
        }
        let _ = write!(desc, ", extension headers {kinds:?}");
    }
    let first_next = kinds.first().copied().unwrap_or(proto);
    let mut h = random_vec(rng, 40);
    h[0] = 0x60 | (h[0] & 0x0F);
    let payload = (ext_bytes.len() + l4.len()) as u16;
    h[4..6].copy_from_slice(&payload.to_be_bytes());
    h[6] = first_next;
    h[8..24].copy_from_slice(&ip_bytes(src));
    h[24..40].copy_from_slice(&ip_bytes(dst));
    match rng.random_range(0..100) {
        0..4 => {
            h[0] = (h[0] & 0x0F) | rng.random::<u8>() << 4;
            let _ = write!(desc, ", version {}", h[0] >> 4);
        }
        4..10 => {
            let p: u16 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => payload.wrapping_add(rng.random_range(1..=8)),
                _ => payload.saturating_sub(rng.random_range(1..=8)),
            };
            h[4..6].copy_from_slice(&p.to_be_bytes());
            let _ = write!(desc, ", payload length {p} (true {payload})");
        }
        _ => {}
    }
    f.extend(h);
    f.extend(ext_bytes);
    f.extend_from_slice(l4);
}
