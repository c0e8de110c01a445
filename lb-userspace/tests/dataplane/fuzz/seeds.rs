//! Fixture packets (seeds) the generator starts from and the mutators change, built here;
//! with the corpus, what `fuzz/corpus` runs as-is.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::Result;
use lb_userspace::{
    config::Protocol,
    testkit::{
        netns::{CLIENT_MAC, FX_MTU, LB_MAC},
        packets::{self, Tcp as F},
    },
};

use super::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    corpus::load_corpus,
    model::{Model, VipModel, be16},
};

pub(super) struct Seed {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
}

fn client_for(vip: IpAddr, port: u16) -> SocketAddr {
    let ip: IpAddr = if vip.is_ipv4() {
        Ipv4Addr::new(198, 18, 0, 10).into()
    } else {
        "2001:db8::10".parse::<Ipv6Addr>().unwrap().into()
    };
    SocketAddr::new(ip, port)
}

fn router_for(v4: bool) -> IpAddr {
    if v4 {
        Ipv4Addr::new(198, 18, 0, 1).into()
    } else {
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().into()
    }
}

/// A frame from the client's MAC to the LB's: Ethernet, an IP header (IHL 5 / no extension
/// headers) and `payload` as protocol `proto`; ICMP/ICMPv6 checksums are filled in.
fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut payload = payload.to_vec();
    let mut f = Vec::with_capacity(ETH_HLEN + 40 + payload.len());
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if proto == IPPROTO_ICMP && payload.len() >= 4 {
                payload[2..4].copy_from_slice(&[0, 0]);
                let ck = packets::checksum(&payload);
                payload[2..4].copy_from_slice(&ck.to_be_bytes());
            }
            f.extend_from_slice(&ETH_P_IP.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            h[6] = 0x40;
            h[8] = packets::TTL;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let ck = packets::checksum(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            f.push(proto);
            f.push(packets::TTL);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed address families"),
    }
    f.extend_from_slice(&payload);
    if proto == IPPROTO_ICMPV6 {
        set_icmpv6_checksum(&mut f, ETH_HLEN + 40);
    }
    f
}

/// Fill in the ICMPv6 checksum of the message at `off` up to the IP payload's end.
pub(super) fn set_icmpv6_checksum(f: &mut [u8], off: usize) {
    let end = (ETH_HLEN + 40 + be16(f, ETH_HLEN + 4) as usize).min(f.len());
    if off + 4 > end {
        return;
    }
    f[off + 2..off + 4].copy_from_slice(&[0, 0]);
    let mut data = Vec::with_capacity(40 + end - off);
    data.extend_from_slice(&f[ETH_HLEN + 8..ETH_HLEN + 40]);
    data.extend_from_slice(&((end - off) as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    data.extend_from_slice(&f[off..end]);
    let ck = packets::checksum(&data);
    f[off + 2..off + 4].copy_from_slice(&ck.to_be_bytes());
}

/// An ICMP error from a router about a packet the VIP sent to `client`: IPv4 "fragmentation
/// needed" quoting the IP header and 8 bytes (RFC 792), or IPv6 "packet too big" quoting the
/// whole (small) packet (RFC 4443).
fn icmp_error_about(vip: &VipModel, client: SocketAddr) -> Vec<u8> {
    let reply = match vip.proto {
        Protocol::Tcp => packets::tcp(vip.socket(), client, F::Ack, b"response"),
        Protocol::Udp => packets::udp(vip.socket(), client, b"answer"),
    };
    let quoted = &reply[ETH_HLEN..];
    let v4 = vip.addr.is_ipv4();
    let mut m = if v4 {
        vec![3, 4, 0, 0, 0, 0, 0x05, 0x78] // next-hop MTU 1400
    } else {
        vec![2, 0, 0, 0, 0, 0, 0x05, 0x00] // MTU 1280
    };
    m.extend_from_slice(if v4 { &quoted[..28] } else { quoted });
    let proto = if v4 { IPPROTO_ICMP } else { IPPROTO_ICMPV6 };
    ip_frame(router_for(v4), vip.addr, proto, &m)
}

/// The fixture packets every fuzz run starts from: each VIP's traffic in several shapes, packets
/// at the MTU boundary for both outer families, ICMP errors and echo requests, fragments, and
/// traffic that is not for a VIP.
fn builtin_seeds(model: &Model) -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| seeds.push(Seed { name, bytes });
    for vip in &model.vips {
        let v = vip.socket();
        let c = client_for(vip.addr, 40000);
        let name = |what: &str| format!("{} {v} {what}", vip.proto);
        let v4 = vip.addr.is_ipv4();
        // IP + TCP/UDP header sizes, to size payloads for an exact IP length.
        let overhead = if v4 { 20 } else { 40 } + if vip.proto == Protocol::Tcp { 20 } else { 8 };
        let with_payload = |p: &[u8]| match vip.proto {
            Protocol::Tcp => packets::tcp(c, v, F::Ack, p),
            Protocol::Udp => packets::udp(c, v, p),
        };
        match vip.proto {
            Protocol::Tcp => {
                add(name("syn"), packets::tcp(c, v, F::Syn, b""));
                add(
                    name("ack"),
                    packets::tcp(c, v, F::Ack, b"GET / HTTP/1.1\r\n\r\n"),
                );
                add(name("fin"), packets::tcp(c, v, F::Fin, b""));
                add(name("rst"), packets::tcp(c, v, F::Rst, b""));
            }
            Protocol::Udp => add(name("query"), packets::udp(c, v, b"query")),
        }
        let mut padded = with_payload(b"x");
        padded.resize(padded.len().max(60), 0);
        add(name("padded to 60 bytes"), padded);
        // Either side of the MTU once encapsulated, for an IPv6 (40) and an IPv4 (20) outer
        // header.
        for ip_len in [FX_MTU - 40, FX_MTU - 39, FX_MTU - 20, FX_MTU - 19] {
            add(
                name(&format!("ip length {ip_len}")),
                with_payload(&vec![0x5A; ip_len - overhead]),
            );
        }
        let plain = with_payload(b"options");
        if v4 {
            // 8 bytes of options: two NOPs, then end of options.
            let mut p = plain[..34].to_vec();
            p.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
            p.extend_from_slice(&plain[34..]);
            p[14] = 0x47;
            let tot = be16(&p, 16) + 8;
            p[16..18].copy_from_slice(&tot.to_be_bytes());
            packets::fix_ipv4_checksum(&mut p);
            add(name("ipv4 options"), p);
        } else {
            // A hop-by-hop header (PadN) and a destination options header.
            let mut p = plain[..54].to_vec();
            let l4 = p[20];
            p[20] = IPPROTO_HOPOPTS;
            p.extend_from_slice(&[IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
            p.extend_from_slice(&[l4, 0, 1, 4, 0, 0, 0, 0]);
            p.extend_from_slice(&plain[54..]);
            let len = be16(&p, 18) + 16;
            p[18..20].copy_from_slice(&len.to_be_bytes());
            add(name("ipv6 extension headers"), p);
        }
        add(name("icmp error about it"), icmp_error_about(vip, c));
    }
    for &a in &model.addresses {
        let v4 = a.is_ipv4();
        let c = client_for(a, 0).ip();
        add(format!("echo request to {a}"), packets::icmp_echo(c, a));
        let (tcp_vip, frag) = {
            let p = packets::tcp(
                SocketAddr::new(c, 40000),
                SocketAddr::new(a, 80),
                F::Syn,
                b"",
            );
            let mut f = p.clone();
            if v4 {
                f[20] |= 0x20;
                packets::fix_ipv4_checksum(&mut f);
            } else {
                f = p[..54].to_vec();
                f[20] = IPPROTO_FRAGMENT;
                f.extend_from_slice(&[IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 42]);
                f.extend_from_slice(&p[54..]);
                let len = be16(&f, 18) + 8;
                f[18..20].copy_from_slice(&len.to_be_bytes());
            }
            (p, f)
        };
        add(format!("fragment to {a}"), frag);
        let mut other_port = tcp_vip;
        let at = if v4 { 36 } else { 56 };
        other_port[at..at + 2].copy_from_slice(&22u16.to_be_bytes());
        add(format!("tcp to {a}:22"), other_port);
    }
    for (src, dst) in [
        ("198.18.0.10:40000", "198.18.100.9:80"),
        ("[2001:db8::10]:40000", "[2001:db8:100::9]:80"),
    ] {
        let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
        add(format!("tcp to {d}"), packets::tcp(s, d, F::Syn, b""));
        add(format!("udp to {d}"), packets::udp(s, d, b"not for us"));
        add(
            format!("echo request to {}", d.ip()),
            packets::icmp_echo(s.ip(), d.ip()),
        );
    }
    add(
        "arp request".into(),
        packets::arp_request([198, 18, 0, 10], [198, 18, 100, 1]),
    );
    seeds
}

pub(super) fn seeds(model: &Model) -> Result<Vec<Seed>> {
    let mut s = builtin_seeds(model);
    s.extend(load_corpus()?);
    Ok(s)
}
