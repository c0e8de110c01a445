//! Packet builders for fixtures: client packets (etherparse) and the encapsulated packets we
//! expect out of the program, built independently of the program's own code.
use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use super::netns::{CLIENT_MAC, LB_MAC};

pub const TTL: u8 = 64;

#[derive(Clone, Copy)]
pub enum Tcp {
    Syn,
    Ack,
    Fin,
    Rst,
}

/// A TCP packet from the client to the LB's MAC.
pub fn tcp(src: SocketAddr, dst: SocketAddr, flags: Tcp, payload: &[u8]) -> Vec<u8> {
    let b = ip_step(src.ip(), dst.ip());
    let b = b.tcp(src.port(), dst.port(), 1000, 64240);
    let b = match flags {
        Tcp::Syn => b.syn(),
        Tcp::Ack => b.ack(2000),
        Tcp::Fin => b.fin().ack(2000),
        Tcp::Rst => b.rst(),
    };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A SYN with sequence number `seq` (`tcp` uses 1000).
pub fn syn_seq(src: SocketAddr, dst: SocketAddr, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    ip_step(src.ip(), dst.ip())
        .tcp(src.port(), dst.port(), seq, 64240)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    out
}

/// A UDP packet from the client to the LB's MAC.
pub fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ip_step(src.ip(), dst.ip())
        .udp(src.port(), dst.port())
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A broadcast ARP request from the client's MAC: who has `target`, tell `sender`.
pub fn arp_request(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0xFF; 6];
    p.extend_from_slice(&CLIENT_MAC);
    p.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    p.extend_from_slice(&CLIENT_MAC);
    p.extend_from_slice(&sender);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target);
    p.resize(60, 0);
    p
}

/// An IPv4 packet made a first fragment: more-fragments set, checksum fixed.
pub fn first_fragment(mut p: Vec<u8>) -> Vec<u8> {
    p[20] |= 0x20;
    fix_ipv4_checksum(&mut p);
    p
}

/// An ICMP echo request.
pub fn icmp_echo(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv4(s.octets(), d.octets(), TTL)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv6(s.octets(), d.octets(), TTL)
            .icmpv6_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        _ => panic!("mixed families"),
    }
    out
}

/// The ICMP echo reply the load balancer should send for `icmp_echo(src, dst)`.
pub fn icmp_echo_reply(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
            .ipv4(d.octets(), s.octets(), TTL)
            .icmpv4_echo_reply(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
            .ipv6(d.octets(), s.octets(), TTL)
            .icmpv6_echo_reply(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        _ => panic!("mixed families"),
    }
    out
}

/// An ICMP error from `router` to the VIP about the backend's reply `vip → client` (TCP):
/// IPv4 "fragmentation needed" (type 3 code 4, next-hop MTU 1400) or ICMPv6 "packet too big".
pub fn icmp_too_big(router: IpAddr, vip: SocketAddr, client: SocketAddr) -> Vec<u8> {
    // The quoted packet: the reply's IP header and the first 8 bytes of its TCP header.
    let reply = tcp_from(vip, client, LB_MAC, CLIENT_MAC);
    let ip_hlen = if vip.is_ipv4() { 20 } else { 40 };
    let quoted = &reply[14..14 + ip_hlen + 8];
    let mut out = Vec::new();
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
    match (router, vip.ip()) {
        (IpAddr::V4(r), IpAddr::V4(v)) => eth
            .ipv4(r.octets(), v.octets(), TTL)
            .icmpv4_raw(3, 4, [0, 0, 0x05, 0x78])
            .write(&mut out, quoted)
            .unwrap(),
        (IpAddr::V6(r), IpAddr::V6(v)) => eth
            .ipv6(r.octets(), v.octets(), TTL)
            .icmpv6_raw(2, 0, 1400u32.to_be_bytes())
            .write(&mut out, quoted)
            .unwrap(),
        _ => panic!("mixed families"),
    }
    out
}

fn tcp_from(src: SocketAddr, dst: SocketAddr, smac: [u8; 6], dmac: [u8; 6]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let b = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), TTL),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), TTL),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    b.tcp(src.port(), dst.port(), 5000, 64240)
        .ack(1001)
        .write(&mut out, &[0u8; 1400])
        .unwrap();
    out
}

/// `pkt` (IPv6) with a hop-by-hop and a destination-options header (8 bytes each, padding
/// only) inserted before its transport header.
pub fn with_ipv6_ext_headers(pkt: &[u8], count: usize) -> Vec<u8> {
    let mut out = pkt[..54].to_vec();
    let transport = out[20];
    // Chain: IPv6 → hop-by-hop (0) → destination options (60) ... → transport.
    out[20] = 0;
    for i in 0..count {
        let next = if i + 1 == count { transport } else { 60 };
        out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.extend_from_slice(&pkt[54..]);
    let len = u16::from_be_bytes([out[18], out[19]]) + 8 * count as u16;
    out[18..20].copy_from_slice(&len.to_be_bytes());
    out
}

fn ip_step(src: IpAddr, dst: IpAddr) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), TTL),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), TTL),
        _ => panic!("mixed families"),
    }
}

/// What the LB should emit for `input` sent to `backend`: new Ethernet header, outer header from
/// `outer_src`, then the input's IP packet (and any Ethernet padding after it) unchanged.
pub fn encapsulated(
    input: &[u8],
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    outer_src: IpAddr,
    backend: IpAddr,
    hash: u32,
) -> Vec<u8> {
    let inner = &input[14..];
    let inner_v4 = inner[0] >> 4 == 4;
    let (inner_len, tos, df) = if inner_v4 {
        let len = u16::from_be_bytes([inner[2], inner[3]]) as usize;
        (len, inner[1], inner[6] & 0x40 != 0)
    } else {
        let len = 40 + u16::from_be_bytes([inner[4], inner[5]]) as usize;
        let tc = ((u16::from_be_bytes([inner[0], inner[1]]) >> 4) & 0xFF) as u8;
        (len, tc, true)
    };
    let proto = if inner_v4 { 4u8 } else { 41u8 };
    let mut out = Vec::with_capacity(input.len() + 40);
    out.extend_from_slice(&eth_dst);
    out.extend_from_slice(&eth_src);
    match (outer_src, backend) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[1] = tos;
            h[2..4].copy_from_slice(&((inner_len + 20) as u16).to_be_bytes());
            if df {
                h[6] = 0x40;
            }
            h[8] = TTL;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let ck = checksum(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&0x86DDu16.to_be_bytes());
            let first = (6u32 << 28) | ((tos as u32) << 20) | (hash & 0xF_FFFF);
            out.extend_from_slice(&first.to_be_bytes());
            out.extend_from_slice(&(inner_len as u16).to_be_bytes());
            out.push(proto);
            out.push(TTL);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => panic!("outer source and backend of different families"),
    }
    out.extend_from_slice(inner);
    out
}

/// RFC 1071 checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recompute the IPv4 header checksum of the packet's (first) IPv4 header at offset 14.
pub fn fix_ipv4_checksum(pkt: &mut [u8]) {
    let ihl = (pkt[14] & 0x0F) as usize * 4;
    pkt[24] = 0;
    pkt[25] = 0;
    let ck = checksum(&pkt[14..14 + ihl]);
    pkt[24..26].copy_from_slice(&ck.to_be_bytes());
}
