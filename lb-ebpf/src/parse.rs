//! Step 1: parse Ethernet, IPv4/IPv6 and the TCP/UDP ports into the flow's 5-tuple.
//!
//! Anything we cannot fully parse is handed to the kernel untouched (its own validation decides),
//! so a malformed packet is never forwarded and never breaks the host's normal traffic.
use aya_ebpf::programs::XdpContext;
use lb_common::{
    addr::{FAMILY_V4, FAMILY_V6},
    flow::FlowKey,
    stats::Stat,
    vip::{IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    headers::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_FRAGMENT, IPV4_FRAG_MASK, IPV4_HLEN,
        IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, Ports, TCP_MIN_HLEN, UDP_HLEN,
    },
    packet::{has_bytes, ptr_at},
};

/// A parsed TCP or UDP packet.
pub struct Packet {
    /// The 5-tuple: VIP lookup, flow-table key and flow-hash input.
    pub flow: FlowKey,
    /// IP total length (header + payload) in host order: what an outer header wraps.
    pub ip_len: u16,
    /// IPv4 TOS / IPv6 traffic class, copied to the outer header so QoS survives encapsulation.
    pub tos: u8,
    /// IPv4 "don't fragment" flag, copied to an outer IPv4 header.
    pub dont_fragment: bool,
}

/// Parse the packet, or say which pass-through outcome it gets.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, Stat> {
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Stat::PassNotIp)?;
    match u16::from_be(unsafe { (*eth).ether_type }) {
        ETH_P_IP => parse_ipv4(ctx),
        ETH_P_IPV6 => parse_ipv6(ctx),
        _ => Err(Stat::PassNotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext) -> Result<Packet, Stat> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    if ip.ver_ihl >> 4 != 4 {
        return Err(Stat::PassUnparsed);
    }
    let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
    let ip_len = u16::from_be(ip.tot_len);
    // A header length below the minimum, or a total length that is shorter than the header or
    // longer than what arrived, is a lying packet.
    if ihl < IPV4_HLEN || (ip_len as usize) < ihl || !has_bytes(ctx, ETH_HLEN + ip_len as usize) {
        return Err(Stat::PassUnparsed);
    }
    let frag = u16::from_be(ip.frag_off);
    if frag & IPV4_FRAG_MASK != 0 {
        return Err(Stat::PassFragment);
    }
    let mut flow = FlowKey {
        src: [ip.src, 0, 0, 0],
        dst: [ip.dst, 0, 0, 0],
        proto: ip.proto,
        family: FAMILY_V4,
        ..FlowKey::default()
    };
    let l4_len = ip_len as usize - ihl;
    ports(ctx, ETH_HLEN + ihl, l4_len, &mut flow)?;
    Ok(Packet {
        flow,
        ip_len,
        tos: ip.tos,
        dont_fragment: frag & crate::headers::IPV4_DF != 0,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext) -> Result<Packet, Stat> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    let first = u32::from_be(ip.ver_tc_flow);
    if first >> 28 != 6 {
        return Err(Stat::PassUnparsed);
    }
    let payload_len = u16::from_be(ip.payload_len) as usize;
    if !has_bytes(ctx, ETH_HLEN + IPV6_HLEN + payload_len) {
        return Err(Stat::PassUnparsed);
    }
    if ip.next_hdr == IPPROTO_FRAGMENT {
        return Err(Stat::PassFragment);
    }
    let mut flow = FlowKey {
        src: ip.src,
        dst: ip.dst,
        proto: ip.next_hdr,
        family: FAMILY_V6,
        ..FlowKey::default()
    };
    ports(ctx, ETH_HLEN + IPV6_HLEN, payload_len, &mut flow)?;
    Ok(Packet {
        flow,
        ip_len: (IPV6_HLEN + payload_len) as u16,
        tos: (first >> 20) as u8,
        dont_fragment: true,
    })
}

/// Fill the ports of a TCP or UDP flow whose L4 header starts at `l4_off` and whose IP payload
/// is `l4_len` bytes. Other protocols are not load-balanced (no VIP can match them).
#[inline(always)]
fn ports(ctx: &XdpContext, l4_off: usize, l4_len: usize, flow: &mut FlowKey) -> Result<(), Stat> {
    let min = match flow.proto {
        IPPROTO_TCP => TCP_MIN_HLEN,
        IPPROTO_UDP => UDP_HLEN,
        _ => return Err(Stat::PassNoVip),
    };
    if l4_len < min {
        return Err(Stat::PassUnparsed);
    }
    let p: *const Ports = ptr_at(ctx, l4_off).ok_or(Stat::PassUnparsed)?;
    let p = unsafe { &*p };
    flow.sport = p.sport;
    flow.dport = p.dport;
    Ok(())
}
