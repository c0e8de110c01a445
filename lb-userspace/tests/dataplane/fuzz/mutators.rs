//! Mutations of a packet: the ways the generator breaks and bends seeds.
use std::fmt::Write as _;

use lb_userspace::testkit::packets;
use rand::{Rng, rngs::SmallRng, seq::IndexedRandom};

use super::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_ROUTING, IPPROTO_TCP,
    IPPROTO_UDP, MAX_FRAME,
    generator::{ip_bytes, random_client, random_dst, random_ether_type, random_vec},
    model::{Model, be16},
};

pub(super) fn clamp_frame(mut p: Vec<u8>) -> Vec<u8> {
    p.truncate(MAX_FRAME);
    if p.len() < ETH_HLEN {
        p.resize(ETH_HLEN, 0);
    }
    p
}

/// Offsets in a frame read as its Ethernet type says: (IPv4?, L3 offset, L4 offset).
fn layout(p: &[u8]) -> Option<(bool, usize, usize)> {
    if p.len() < ETH_HLEN + 20 {
        return None;
    }
    match be16(p, 12) {
        ETH_P_IP => Some((true, ETH_HLEN, ETH_HLEN + (p[ETH_HLEN] & 0x0F) as usize * 4)),
        ETH_P_IPV6 => Some((false, ETH_HLEN, ETH_HLEN + 40)),
        _ => None,
    }
}

/// One random mutation of `p`, described in `desc`. Most are aimed at the fields the parser
/// decides on; a few are blind.
pub(super) fn mutate(rng: &mut SmallRng, model: &Model, p: &mut Vec<u8>, desc: &mut String) {
    let l = layout(p);
    let put16 = |p: &mut Vec<u8>, at: usize, v: u16| {
        if at + 2 <= p.len() {
            p[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    };
    match rng.random_range(0..17) {
        0 | 1 => {
            // Flip a bit, mostly in the headers.
            let span = if rng.random_bool(0.7) {
                p.len().min(80)
            } else {
                p.len()
            };
            let (i, b) = (rng.random_range(0..span), rng.random_range(0..8));
            p[i] ^= 1 << b;
            let _ = write!(desc, " flip bit {b} of byte {i};");
        }
        2 => {
            let i = rng.random_range(0..p.len());
            p[i] = rng.random();
            let _ = write!(desc, " byte {i} = {:#04x};", p[i]);
        }
        3 => {
            let n = if rng.random_bool(0.7) {
                rng.random_range(ETH_HLEN..=p.len().min(90))
            } else {
                rng.random_range(ETH_HLEN..=p.len())
            };
            p.truncate(n);
            let _ = write!(desc, " truncate to {n};");
        }
        4 => {
            let n = rng.random_range(1..=64);
            if rng.random_bool(0.5) {
                p.resize(p.len() + n, 0);
            } else {
                p.extend(random_vec(rng, n));
            }
            let _ = write!(desc, " append {n} bytes;");
        }
        5 | 6 => {
            // An IP length field: random, off by a little, the header only, or the frame's.
            let Some((v4, l3, l4)) = l else { return };
            let at = l3 + if v4 { 2 } else { 4 };
            let cur = be16(p, at);
            let frame = (p.len() - l3).saturating_sub(if v4 { 0 } else { 40 }) as u16;
            let v = match rng.random_range(0..5) {
                0 => rng.random(),
                1 => cur.wrapping_add(rng.random_range(1..=4)),
                2 => cur.wrapping_sub(rng.random_range(1..=4)),
                3 => (l4 - l3) as u16 - if v4 { 0 } else { 40 },
                _ => frame,
            };
            put16(p, at, v);
            let _ = write!(desc, " ip length {v} (was {cur});");
        }
        7 => {
            let Some((true, l3, _)) = l else { return };
            let ihl = rng.random_range(0..16);
            p[l3] = (p[l3] & 0xF0) | ihl;
            let _ = write!(desc, " ihl {ihl};");
        }
        8 => {
            let Some((_, l3, _)) = l else { return };
            let ver = *[4u8, 6, 0, 5, 15].choose(rng).unwrap();
            p[l3] = (p[l3] & 0x0F) | ver << 4;
            let _ = write!(desc, " ip version {ver};");
        }
        9 => {
            let Some((v4, l3, _)) = l else { return };
            let proto = *[
                IPPROTO_TCP,
                IPPROTO_UDP,
                IPPROTO_ICMP,
                IPPROTO_ICMPV6,
                IPPROTO_FRAGMENT,
                IPPROTO_HOPOPTS,
                IPPROTO_ROUTING,
                IPPROTO_DSTOPTS,
                IPPROTO_IPIP,
                IPPROTO_IPV6,
                rng.random(),
            ]
            .choose(rng)
            .unwrap();
            p[l3 + if v4 { 9 } else { 6 }] = proto;
            let _ = write!(desc, " protocol {proto};");
        }
        10 => {
            let Some((v4, l3, _)) = l else { return };
            if v4 {
                let v: u16 = match rng.random_range(0..4) {
                    0 => 0x2000,
                    1 => rng.random::<u16>() & 0x1FFF,
                    2 => 0x4000,
                    _ => rng.random(),
                };
                put16(p, l3 + 6, v);
                let _ = write!(desc, " ipv4 flags/fragment offset {v:#06x};");
            } else {
                insert_ipv6_ext(rng, p, desc);
            }
        }
        11 => {
            // Ports: a VIP's, or any.
            let Some((_, _, l4)) = l else { return };
            let port = if rng.random_bool(0.6) {
                model.vips.choose(rng).unwrap().port
            } else {
                rng.random()
            };
            let which = rng.random_range(0..2);
            put16(p, l4 + 2 * which, port);
            let _ = write!(desc, " {} port {port};", ["source", "destination"][which]);
        }
        12 | 13 => {
            // The destination (or source): another VIP address, a near miss, anything.
            let Some((v4, l3, _)) = l else { return };
            let a = match rng.random_range(0..3) {
                0 => *model.addresses_of(v4).choose(rng).unwrap(),
                1 => random_dst(rng, model, v4),
                _ => random_client(rng, v4),
            };
            let dst = rng.random_bool(0.8);
            let at = l3
                + match (v4, dst) {
                    (true, true) => 16,
                    (true, false) => 12,
                    (false, true) => 24,
                    (false, false) => 8,
                };
            let b = ip_bytes(a);
            if at + b.len() <= p.len() {
                p[at..at + b.len()].copy_from_slice(&b);
            }
            let _ = write!(desc, " {} {a};", if dst { "destination" } else { "source" });
        }
        14 => {
            let t = random_ether_type(rng);
            p[12..14].copy_from_slice(&t.to_be_bytes());
            let _ = write!(desc, " Ethernet type {t:#06x};");
        }
        15 => {
            // Make the IP length match the frame again, so the mutations around it still reach
            // the VIP path.
            let Some((v4, l3, _)) = l else { return };
            let v = (p.len() - l3).saturating_sub(if v4 { 0 } else { 40 }) as u16;
            put16(p, l3 + if v4 { 2 } else { 4 }, v);
            let _ = write!(desc, " ip length = frame ({v});");
        }
        _ => {
            // Shift everything after a random point (a header boundary in the middle of a
            // packet): insert or delete a few bytes.
            let at = rng.random_range(ETH_HLEN..=p.len());
            let n = rng.random_range(1..=8);
            if rng.random_bool(0.5) {
                let bytes = random_vec(rng, n);
                p.splice(at..at, bytes);
                let _ = write!(desc, " insert {n} bytes at {at};");
            } else {
                let end = (at + n).min(p.len());
                p.drain(at..end);
                let _ = write!(desc, " delete bytes {at}..{end};");
            }
        }
    }
    // The program does not check the IPv4 header checksum (the kernel does, on what it gets);
    // keep it right most of the time anyway, as a sender would.
    if let Some((true, l3, _)) = layout(p) {
        let ihl = (p[l3] & 0x0F) as usize * 4;
        if ihl >= 20 && l3 + ihl <= p.len() && rng.random_bool(0.7) {
            packets::fix_ipv4_checksum(p);
        }
    }
}

/// Insert an IPv6 extension header right after the IPv6 header, keeping the chain and the
/// payload length consistent.
fn insert_ipv6_ext(rng: &mut SmallRng, p: &mut Vec<u8>, desc: &mut String) {
    if p.len() < ETH_HLEN + 40 {
        return;
    }
    let kind = *[
        IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
        IPPROTO_DSTOPTS,
        IPPROTO_FRAGMENT,
    ]
    .choose(rng)
    .unwrap();
    let units = if kind == IPPROTO_FRAGMENT {
        0
    } else {
        rng.random_range(0..=1)
    };
    let mut h = random_vec(rng, (units + 1) * 8);
    h[0] = p[ETH_HLEN + 6];
    h[1] = units as u8;
    if kind == IPPROTO_FRAGMENT && rng.random_bool(0.5) {
        h[2..4].copy_from_slice(&[0, 0]); // an atomic fragment: offset 0, no more fragments
    }
    p[ETH_HLEN + 6] = kind;
    let len = be16(p, ETH_HLEN + 4).wrapping_add(h.len() as u16);
    p[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&len.to_be_bytes());
    let at = ETH_HLEN + 40;
    p.splice(at..at, h);
    let _ = write!(desc, " insert extension header {kind};");
}
