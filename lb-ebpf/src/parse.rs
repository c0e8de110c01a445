//! Step 1: parse Ethernet, IPv4/IPv6 (options, extension headers) and TCP/UDP ports into the
//! flow's 5-tuple; recognise ICMP echo requests and ICMP errors about a flow.
//!
//! Anything we cannot fully parse is handed to the kernel untouched (its own validation decides),
//! so a malformed packet is never forwarded and never breaks the host's normal traffic.
use aya_ebpf::programs::XdpContext;
use lb_common::{
    addr::{AddrWords, FAMILY_V4, FAMILY_V6},
    flow::FlowKey,
    stats::Stat,
    vip::{IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    headers::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_FRAGMENT, IPV4_DF, IPV4_FRAG_MASK,
        IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, Ports, TCP_MIN_HLEN, UDP_HLEN,
    },
    packet::{has_bytes, ptr_at},
};

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 extension headers we walk past to find the transport header.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DSTOPTS: u8 = 60;
/// How many IPv6 extension headers we walk before giving up (the kernel gets the packet).
const IPV6_MAX_EXT: usize = 4;

/// What a packet is, as far as load balancing goes.
pub enum Parsed {
    /// A TCP or UDP packet (or an ICMP error about one, see [`Packet::icmp_error`]).
    Flow(Packet),
    /// An ICMP/ICMPv6 echo request to `dst`.
    Echo(Echo),
    /// An IP fragment to `dst`: without ports it cannot be load-balanced.
    Fragment { dst: AddrWords, family: u8 },
}

/// A parsed TCP or UDP packet.
pub struct Packet {
    /// The 5-tuple: VIP lookup, flow-table key and flow-hash input. For an ICMP error, the
    /// client→VIP flow the error is about (the inner packet's tuple, reversed).
    pub flow: FlowKey,
    /// IP total length (header + payload) in host order: what an outer header wraps.
    pub ip_len: u16,
    /// IPv4 TOS / IPv6 traffic class, copied to the outer header so QoS survives encapsulation.
    pub tos: u8,
    /// IPv4 "don't fragment" flag, copied to an outer IPv4 header.
    pub dont_fragment: bool,
    /// TCP flags (0 for UDP and ICMP).
    pub tcp_flags: u8,
    /// TCP sequence number as on the wire (only compared: a SYN's tells a retransmission from a
    /// new connection on the same tuple).
    pub tcp_seq: u32,
    /// An ICMP error (destination unreachable incl. fragmentation needed / packet too big,
    /// time exceeded) about a VIP flow: it goes to the flow's backend so PMTU discovery works,
    /// but never creates a flow.
    pub icmp_error: bool,
}

/// An ICMP/ICMPv6 echo request; the program answers it for VIP addresses.
pub struct Echo {
    pub family: u8,
    pub dst: AddrWords,
    /// Offset of the IP header's end, i.e. of the ICMP header.
    pub icmp_off: usize,
    /// IPv4 header length (the checksum is recomputed over it).
    pub ihl: usize,
}

/// Parse the packet, or say which pass-through outcome it gets.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Parsed, Stat> {
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Stat::PassNotIp)?;
    match u16::from_be(unsafe { (*eth).ether_type }) {
        ETH_P_IP => parse_ipv4(ctx),
        ETH_P_IPV6 => parse_ipv6(ctx),
        _ => Err(Stat::PassNotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext) -> Result<Parsed, Stat> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    if ip.ver_ihl >> 4 != 4 {
        return Err(Stat::PassUnparsed);
    }
    let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
    let ip_len = u16::from_be(ip.tot_len);
    // A header length below the minimum, or a total length shorter than the header, is a lying
    // packet (a total length longer than what arrived is checked last, see `fits`).
    if ihl < IPV4_HLEN || (ip_len as usize) < ihl {
        return Err(Stat::PassUnparsed);
    }
    let frag = u16::from_be(ip.frag_off);
    if frag & IPV4_FRAG_MASK != 0 {
        fits(ctx, ETH_HLEN + ip_len as usize)?;
        return Ok(Parsed::Fragment {
            dst: [ip.dst, 0, 0, 0],
            family: FAMILY_V4,
        });
    }
    let l4_off = ETH_HLEN + ihl;
    let l4_len = ip_len as usize - ihl;
    let mut pkt = Packet {
        flow: FlowKey {
            src: [ip.src, 0, 0, 0],
            dst: [ip.dst, 0, 0, 0],
            proto: ip.proto,
            family: FAMILY_V4,
            ..FlowKey::default()
        },
        ip_len,
        tos: ip.tos,
        dont_fragment: frag & IPV4_DF != 0,
        tcp_flags: 0,
        tcp_seq: 0,
        icmp_error: false,
    };
    let parsed = if ip.proto == IPPROTO_ICMP {
        icmp(ctx, pkt, l4_off, l4_len, ihl)?
    } else {
        transport(ctx, l4_off, l4_len, &mut pkt)?;
        Parsed::Flow(pkt)
    };
    fits(ctx, ETH_HLEN + ip_len as usize)?;
    Ok(parsed)
}

/// The packet holds `len` bytes: the IP length did not lie.
///
/// Done after the headers are read, on purpose: checked first, it lets the compiler prove the
/// per-header bounds checks redundant and drop them, and the verifier, which cannot follow that
/// proof, then rejects the header reads.
#[inline(always)]
fn fits(ctx: &XdpContext, len: usize) -> Result<(), Stat> {
    if has_bytes(ctx, len) {
        Ok(())
    } else {
        Err(Stat::PassUnparsed)
    }
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext) -> Result<Parsed, Stat> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    let first = u32::from_be(ip.ver_tc_flow);
    if first >> 28 != 6 {
        return Err(Stat::PassUnparsed);
    }
    let payload_len = u16::from_be(ip.payload_len) as usize;
    let end = ETH_HLEN + IPV6_HLEN + payload_len;
    // Walk hop-by-hop, routing and destination options headers to the transport header.
    let mut next = ip.next_hdr;
    let mut off = ETH_HLEN + IPV6_HLEN;
    for _ in 0..IPV6_MAX_EXT {
        if !matches!(next, IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS) {
            break;
        }
        let ext: *const [u8; 2] = ptr_at(ctx, off).ok_or(Stat::PassUnparsed)?;
        let ext = unsafe { *ext };
        next = ext[0];
        off += (ext[1] as usize + 1) * 8;
    }
    if next == IPPROTO_FRAGMENT {
        fits(ctx, end)?;
        return Ok(Parsed::Fragment {
            dst: ip.dst,
            family: FAMILY_V6,
        });
    }
    if off > end {
        return Err(Stat::PassUnparsed);
    }
    let mut pkt = Packet {
        flow: FlowKey {
            src: ip.src,
            dst: ip.dst,
            proto: next,
            family: FAMILY_V6,
            ..FlowKey::default()
        },
        ip_len: (IPV6_HLEN + payload_len) as u16,
        tos: (first >> 20) as u8,
        dont_fragment: true,
        tcp_flags: 0,
        tcp_seq: 0,
        icmp_error: false,
    };
    let parsed = if next == IPPROTO_ICMPV6 {
        icmp(ctx, pkt, off, end - off, 0)?
    } else {
        transport(ctx, off, end - off, &mut pkt)?;
        Parsed::Flow(pkt)
    };
    fits(ctx, end)?;
    Ok(parsed)
}

/// Fill the ports (and TCP flags) of a TCP or UDP packet whose L4 header starts at `l4_off`
/// and whose IP payload is `l4_len` bytes. Other protocols are not load-balanced.
#[inline(always)]
fn transport(ctx: &XdpContext, l4_off: usize, l4_len: usize, pkt: &mut Packet) -> Result<(), Stat> {
    let min = match pkt.flow.proto {
        IPPROTO_TCP => TCP_MIN_HLEN,
        IPPROTO_UDP => UDP_HLEN,
        _ => return Err(Stat::PassNoVip),
    };
    if l4_len < min {
        return Err(Stat::PassUnparsed);
    }
    let p: *const Ports = ptr_at(ctx, l4_off).ok_or(Stat::PassUnparsed)?;
    let p = unsafe { &*p };
    pkt.flow.sport = p.sport;
    pkt.flow.dport = p.dport;
    if pkt.flow.proto == IPPROTO_TCP {
        // Flags are byte 13 of the TCP header, the sequence number bytes 4-7.
        let flags: *const u8 = ptr_at(ctx, l4_off + 13).ok_or(Stat::PassUnparsed)?;
        pkt.tcp_flags = unsafe { *flags };
        let seq: *const [u8; 4] = ptr_at(ctx, l4_off + 4).ok_or(Stat::PassUnparsed)?;
        pkt.tcp_seq = u32::from_ne_bytes(unsafe { *seq });
    }
    Ok(())
}

/// ICMP: echo requests, and errors quoting a TCP/UDP packet that the VIP sent (a backend's
/// reply), which belong to the flow client→VIP. Other ICMP goes to the kernel.
#[inline(always)]
fn icmp(
    ctx: &XdpContext,
    mut pkt: Packet,
    off: usize,
    len: usize,
    ihl: usize,
) -> Result<Parsed, Stat> {
    // type, code, checksum, 4 bytes of rest: 8 bytes before any quoted packet.
    if len < 8 {
        return Err(Stat::PassUnparsed);
    }
    let hdr: *const [u8; 2] = ptr_at(ctx, off).ok_or(Stat::PassUnparsed)?;
    let kind = unsafe { (*hdr)[0] };
    let v4 = pkt.flow.family == FAMILY_V4;
    let (echo, error) = if v4 {
        (kind == 8, kind == 3 || kind == 11)
    } else {
        (kind == 128, kind == 1 || kind == 2 || kind == 3)
    };
    if echo {
        return Ok(Parsed::Echo(Echo {
            family: pkt.flow.family,
            dst: pkt.flow.dst,
            icmp_off: off,
            ihl,
        }));
    }
    if !error {
        return Err(Stat::PassNoVip);
    }
    // The quoted packet: an IP header and at least the ports. It was sent by the VIP (source)
    // to the client (destination); the flow it belongs to is client → VIP.
    let inner = off + 8;
    let (src, dst, proto, ports_off) = if v4 {
        let ip: *const Ipv4Hdr = ptr_at(ctx, inner).ok_or(Stat::PassUnparsed)?;
        let ip = unsafe { &*ip };
        let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
        if ip.ver_ihl >> 4 != 4 || ihl < IPV4_HLEN {
            return Err(Stat::PassUnparsed);
        }
        ([ip.src, 0, 0, 0], [ip.dst, 0, 0, 0], ip.proto, inner + ihl)
    } else {
        let ip: *const Ipv6Hdr = ptr_at(ctx, inner).ok_or(Stat::PassUnparsed)?;
        let ip = unsafe { &*ip };
        if u32::from_be(ip.ver_tc_flow) >> 28 != 6 {
            return Err(Stat::PassUnparsed);
        }
        (ip.src, ip.dst, ip.next_hdr, inner + IPV6_HLEN)
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err(Stat::PassNoVip);
    }
    // The quoted header and ports must lie within the ICMP message (the IP length), not just
    // within the frame: bytes after the IP packet are not part of it.
    if ports_off + 4 > off + len {
        return Err(Stat::PassUnparsed);
    }
    let p: *const Ports = ptr_at(ctx, ports_off).ok_or(Stat::PassUnparsed)?;
    let p = unsafe { &*p };
    pkt.flow.src = dst;
    pkt.flow.dst = src;
    pkt.flow.sport = p.dport;
    pkt.flow.dport = p.sport;
    pkt.flow.proto = proto;
    pkt.icmp_error = true;
    Ok(Parsed::Flow(pkt))
}
