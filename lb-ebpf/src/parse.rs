//! Step 1: parse Ethernet, IPv4/IPv6 (options, extension headers) and TCP/UDP ports into the
//! flow's 5-tuple; recognise ICMP echo requests and ICMP errors about a flow.
//!
//! Nothing malformed is ever forwarded. A packet whose lengths lie (the frame is shorter than
//! its headers say) is handed to the kernel untouched, whose own validation decides. A packet
//! whose headers are complete but that a router's or host's kernel would refuse (a bad TCP data
//! offset, broken IPv4 options, a broken IPv6 extension chain, source routing) is
//! [`Parsed::Refused`]: dropped and counted by reason when it is addressed to a VIP, handed
//! to the kernel otherwise (the host's own traffic is the kernel's business).
use aya_ebpf::{maps::PerCpuArray, programs::XdpContext};
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
    options,
    packet::{holds, ptr_at},
};

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;

/// What a packet is, as far as load balancing goes.
pub enum Parsed {
    /// A TCP or UDP packet (or an ICMP error about one, see [`Packet::icmp_error`]).
    Flow(Packet),
    /// An ICMP/ICMPv6 echo request to `dst`.
    Echo(Echo),
    /// Not to be forwarded, whatever VIP it is for: dropped with `drop` when `dst` is a VIP
    /// address, handed to the kernel with `pass` otherwise. IP fragments (without ports they
    /// cannot be load-balanced), and complete headers that a router or host would refuse
    /// ([`Stat::is_malformed`]).
    Refused(Refused),
}

/// See [`Parsed::Refused`].
pub struct Refused {
    pub dst: AddrWords,
    pub family: u8,
    pub drop: Stat,
    pub pass: Stat,
}

impl Refused {
    #[inline(always)]
    fn fragment(dst: AddrWords, family: u8) -> Parsed {
        Parsed::Refused(Refused {
            dst,
            family,
            drop: Stat::DropFragment,
            pass: Stat::PassFragment,
        })
    }

    #[inline(always)]
    fn malformed(dst: AddrWords, family: u8, why: Stat) -> Parsed {
        Parsed::Refused(Refused {
            dst,
            family,
            drop: why,
            pass: Stat::PassUnparsed,
        })
    }
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
pub fn parse(ctx: &XdpContext, scratch: &PerCpuArray<options::Scratch>) -> Result<Parsed, Stat> {
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Stat::PassNotIp)?;
    match u16::from_be(unsafe { (*eth).ether_type }) {
        ETH_P_IP => parse_ipv4(ctx, scratch),
        ETH_P_IPV6 => parse_ipv6(ctx, scratch),
        _ => Err(Stat::PassNotIp),
    }
}

/// The IPv4 header at the start of the IP packet, if the frame holds it.
#[inline(always)]
fn ipv4_header(ctx: &XdpContext) -> Result<&Ipv4Hdr, Stat> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    if ip.ver_ihl >> 4 != 4 {
        return Err(Stat::PassUnparsed);
    }
    Ok(ip)
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, scratch: &PerCpuArray<options::Scratch>) -> Result<Parsed, Stat> {
    // Options first, on their own: their walk (a `bpf_loop`) leaves the verifier nothing it
    // knows about values computed before it, so everything else is read after it, afresh.
    let ip = ipv4_header(ctx)?;
    let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
    // A header length below the minimum, or a total length shorter than the header, is a lying
    // packet (a total length longer than what arrived is checked last, see `fits`).
    if ihl < IPV4_HLEN || (u16::from_be(ip.tot_len) as usize) < ihl {
        return Err(Stat::PassUnparsed);
    }
    if ihl > IPV4_HLEN
        && let Err(why) = options::ipv4(ctx, ihl, scratch)
    {
        let ip = ipv4_header(ctx)?;
        let end = ETH_HLEN + u16::from_be(ip.tot_len) as usize;
        return malformed(ctx, end, [ip.dst, 0, 0, 0], FAMILY_V4, why);
    }
    let ip = ipv4_header(ctx)?;
    let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
    let ip_len = u16::from_be(ip.tot_len);
    // Checked above already; again for the verifier, which knows nothing after the walk.
    if ihl < IPV4_HLEN || (ip_len as usize) < ihl {
        return Err(Stat::PassUnparsed);
    }
    let frag = u16::from_be(ip.frag_off);
    if frag & IPV4_FRAG_MASK != 0 {
        fits(ctx, ETH_HLEN + ip_len as usize)?;
        return Ok(Refused::fragment([ip.dst, 0, 0, 0], FAMILY_V4));
    }
    let dst = [ip.dst, 0, 0, 0];
    let l4_off = ETH_HLEN + ihl;
    let l4_len = ip_len as usize - ihl;
    let mut pkt = Packet {
        flow: FlowKey {
            src: [ip.src, 0, 0, 0],
            dst,
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
        match transport(ctx, l4_off, l4_len, &mut pkt) {
            Ok(()) => Parsed::Flow(pkt),
            Err(why) if why.is_malformed() => Refused::malformed(dst, FAMILY_V4, why),
            Err(why) => return Err(why),
        }
    };
    fits(ctx, ETH_HLEN + ip_len as usize)?;
    Ok(parsed)
}

/// A malformed packet, once its IP length is known not to lie (a truncated frame goes to the
/// kernel whatever its headers say).
#[inline(always)]
fn malformed(
    ctx: &XdpContext,
    end: usize,
    dst: AddrWords,
    family: u8,
    why: Stat,
) -> Result<Parsed, Stat> {
    if !why.is_malformed() {
        return Err(why);
    }
    fits(ctx, end)?;
    Ok(Refused::malformed(dst, family, why))
}

/// The frame holds `len` bytes (in any of its buffers): the IP length did not lie.
///
/// Done after the headers are read, on purpose: checked first, it lets the compiler prove the
/// per-header bounds checks redundant and drop them, and the verifier, which cannot follow that
/// proof, then rejects the header reads.
#[inline(always)]
fn fits(ctx: &XdpContext, len: usize) -> Result<(), Stat> {
    if holds(ctx, len) {
        Ok(())
    } else {
        Err(Stat::PassUnparsed)
    }
}

/// The IPv6 header at the start of the IP packet, if the frame holds it.
#[inline(always)]
fn ipv6_header(ctx: &XdpContext) -> Result<&Ipv6Hdr, Stat> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::PassUnparsed)?;
    let ip = unsafe { &*ip };
    if u32::from_be(ip.ver_tc_flow) >> 28 != 6 {
        return Err(Stat::PassUnparsed);
    }
    Ok(ip)
}

/// Where the payload of an IPv6 packet ends.
#[inline(always)]
fn ipv6_end(ip: &Ipv6Hdr) -> usize {
    ETH_HLEN + IPV6_HLEN + u16::from_be(ip.payload_len) as usize
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, scratch: &PerCpuArray<options::Scratch>) -> Result<Parsed, Stat> {
    // The extension walk first, on its own (see `parse_ipv4` on why the rest is read afresh).
    let ip = ipv6_header(ctx)?;
    let walked = options::ipv6(ctx, ip.next_hdr, ipv6_end(ip), scratch);
    let ip = ipv6_header(ctx)?;
    let end = ipv6_end(ip);
    let (next, off) = match walked {
        // The walk kept `off` within the payload, after at most 4 headers of at most 2 KiB;
        // the verifier needs a bound it can see (and packet offsets below 64 KiB).
        Ok((next, off)) => (next, off.min(ETH_HLEN + IPV6_HLEN + 4 * 2048)),
        Err(why) => return malformed(ctx, end, ip.dst, FAMILY_V6, why),
    };
    let first = u32::from_be(ip.ver_tc_flow);
    let payload_len = u16::from_be(ip.payload_len) as usize;
    if next == IPPROTO_FRAGMENT {
        fits(ctx, end)?;
        return Ok(Refused::fragment(ip.dst, FAMILY_V6));
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
        match transport(ctx, off, end - off, &mut pkt) {
            Ok(()) => Parsed::Flow(pkt),
            Err(why) if why.is_malformed() => Refused::malformed(ip.dst, FAMILY_V6, why),
            Err(why) => return Err(why),
        }
    };
    fits(ctx, end)?;
    Ok(parsed)
}

/// Fill the ports (and TCP flags) of a TCP or UDP packet whose L4 header starts at `l4_off`
/// and whose IP payload is `l4_len` bytes. Other protocols are not load-balanced.
#[inline(always)]
fn transport(ctx: &XdpContext, l4_off: usize, l4_len: usize, pkt: &mut Packet) -> Result<(), Stat> {
    let (min, short) = match pkt.flow.proto {
        IPPROTO_TCP => (TCP_MIN_HLEN, Stat::DropBadTcpHeader),
        IPPROTO_UDP => (UDP_HLEN, Stat::DropBadUdpHeader),
        _ => return Err(Stat::PassNoVip),
    };
    // Ports, then (TCP) sequence number or (UDP) length and checksum: 8 bytes.
    let h: *const [u8; 8] = ptr_at(ctx, l4_off).ok_or(Stat::PassUnparsed)?;
    let h = unsafe { *h };
    if l4_len < min {
        return Err(short);
    }
    pkt.flow.sport = u16::from_ne_bytes([h[0], h[1]]);
    pkt.flow.dport = u16::from_ne_bytes([h[2], h[3]]);
    if pkt.flow.proto == IPPROTO_UDP {
        let udp_len = u16::from_be_bytes([h[4], h[5]]) as usize;
        if udp_len < UDP_HLEN || udp_len > l4_len {
            return Err(Stat::DropBadUdpHeader);
        }
        return Ok(());
    }
    pkt.tcp_seq = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    // Data offset (high nibble of byte 12) and flags (byte 13).
    let f: *const [u8; 2] = ptr_at(ctx, l4_off + 12).ok_or(Stat::PassUnparsed)?;
    let [doff, flags] = unsafe { *f };
    let doff = (doff >> 4) as usize * 4;
    if doff < TCP_MIN_HLEN || doff > l4_len {
        return Err(Stat::DropBadTcpHeader);
    }
    pkt.tcp_flags = flags;
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
