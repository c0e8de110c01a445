//! ICMP the load balancer answers itself: echo requests to VIP addresses (so operators and
//! monitoring can ping a VIP), and "too big" errors for packets that no longer fit the path to
//! their backend once encapsulated (so clients' path MTU discovery works).
use aya_ebpf::{helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use lb_common::addr::FAMILY_V4;

use crate::{
    csum,
    headers::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr},
    packet::{frame_len, ptr_at},
    parse::{Echo, IPPROTO_ICMP, IPPROTO_ICMPV6, Packet},
};

const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;
const REPLY_TTL: u8 = 64;

/// Turn the echo request into its reply (addresses and MACs swapped, type changed, checksums
/// updated). `false` if it cannot be answered here (IPv4 options): the kernel gets it.
#[inline(always)]
pub fn echo_reply(ctx: &XdpContext, e: &Echo) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let Some(icmp) = ptr_at::<[u8; 4]>(ctx, e.icmp_off) else {
        return false;
    };
    if e.family == FAMILY_V4 {
        if e.ihl != IPV4_HLEN {
            return false;
        }
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN) else {
            return false;
        };
        unsafe {
            let mut h = *ip;
            core::mem::swap(&mut h.src, &mut h.dst);
            h.ttl = REPLY_TTL;
            h.check = 0;
            h.check = csum::ipv4_header(&h);
            *ip = h;
        }
        set_type(icmp, ICMP_ECHO_REPLY);
    } else {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_HLEN) else {
            return false;
        };
        unsafe {
            let (src, dst) = ((*ip).src, (*ip).dst);
            (*ip).src = dst;
            (*ip).dst = src;
            (*ip).hop_limit = REPLY_TTL;
        }
        // The pseudo-header sum is the same with source and destination swapped.
        set_type(icmp, ICMPV6_ECHO_REPLY);
    }
    unsafe {
        let (d, s) = ((*eth).dst, (*eth).src);
        (*eth).dst = s;
        (*eth).src = d;
    }
    true
}

/// Set the ICMP type byte, updating the checksum incrementally (RFC 1624).
#[inline(always)]
fn set_type(icmp: *mut [u8; 4], new_type: u8) {
    unsafe {
        let old_word = u16::from_be_bytes([(*icmp)[0], (*icmp)[1]]);
        let new_word = u16::from_be_bytes([new_type, (*icmp)[1]]);
        let check = u16::from_be_bytes([(*icmp)[2], (*icmp)[3]]);
        let sum = (!check) as u32 + (!old_word) as u32 + new_word as u32;
        let new_check = csum::fold(sum);
        let [hi, lo] = new_check.to_be_bytes();
        (*icmp)[0] = new_type;
        (*icmp)[2] = hi;
        (*icmp)[3] = lo;
    }
}

/// Bytes of the offending packet an ICMP error quotes: its IP header and 8 bytes (what RFC 792
/// requires and what the client's stack needs to find the connection).
const QUOTE_V4: usize = IPV4_HLEN + 8;
const QUOTE_V6: usize = IPV6_HLEN + 8;
const REPLY_V4_LEN: usize = ETH_HLEN + IPV4_HLEN + 8 + QUOTE_V4;
const REPLY_V6_LEN: usize = ETH_HLEN + IPV6_HLEN + 8 + QUOTE_V6;
const IPV6_MIN_MTU: u16 = 1280;
const IPV4_MIN_MTU: u16 = 68;

/// Turn a packet that does not fit the path to its backend (after encapsulation) into the ICMP
/// "fragmentation needed" / ICMPv6 "packet too big" its sender needs for path MTU discovery,
/// advertising `mtu`, and send it back (the caller returns XDP_TX). `false` when no error may or
/// can be sent (IPv4 without DF, IPv4 options, an ICMP error itself): drop it then.
///
/// The reply is written straight into the packet: the quoted bytes move into place, the packet
/// shrinks to the reply's size, and the new headers overwrite the front.
#[inline(always)]
pub fn too_big(ctx: &XdpContext, pkt: &Packet, mtu: u16) -> bool {
    if pkt.icmp_error {
        return false;
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let eth = unsafe { *eth };
    // The whole frame (a jumbo frame's later buffers too): the reply is cut from all of it.
    let len = frame_len(ctx) as i32;
    if pkt.flow.family == FAMILY_V4 {
        let Some(ver_ihl) = ptr_at::<u8>(ctx, ETH_HLEN) else {
            return false;
        };
        // Without DF a router would fragment; we cannot, and must not answer.
        if !pkt.dont_fragment || unsafe { *ver_ihl } != 0x45 {
            return false;
        }
        let Some(quote_sum) = move_quote::<{ QUOTE_V4 / 4 }>(ctx, ETH_HLEN + IPV4_HLEN + 8) else {
            return false;
        };
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, REPLY_V4_LEN as i32 - len) } != 0 {
            return false;
        }
        let (Some(e), Some(ip), Some(icmp)) = (
            ptr_at::<EthHdr>(ctx, 0),
            ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN),
            ptr_at::<[u8; 8]>(ctx, ETH_HLEN + IPV4_HLEN),
        ) else {
            return false;
        };
        let mut hdr = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0,
            tot_len: ((REPLY_V4_LEN - ETH_HLEN) as u16).to_be(),
            id: 0,
            frag_off: 0,
            ttl: REPLY_TTL,
            proto: IPPROTO_ICMP,
            check: 0,
            // From the VIP (the quoted packet's destination) back to its sender.
            src: pkt.flow.dst[0],
            dst: pkt.flow.src[0],
        };
        hdr.check = csum::ipv4_header(&hdr);
        let m = mtu.max(IPV4_MIN_MTU).to_be_bytes();
        let mut msg = [3, 4, 0, 0, 0, 0, m[0], m[1]];
        let ck = csum::fold(csum::sum_bytes(&msg, quote_sum)).to_be_bytes();
        msg[2] = ck[0];
        msg[3] = ck[1];
        unsafe {
            *e = reply_eth(&eth, ETH_P_IP);
            *ip = hdr;
            *icmp = msg;
        }
    } else {
        let Some(quote_sum) = move_quote::<{ QUOTE_V6 / 4 }>(ctx, ETH_HLEN + IPV6_HLEN + 8) else {
            return false;
        };
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, REPLY_V6_LEN as i32 - len) } != 0 {
            return false;
        }
        let (Some(e), Some(ip), Some(icmp)) = (
            ptr_at::<EthHdr>(ctx, 0),
            ptr_at::<Ipv6Hdr>(ctx, ETH_HLEN),
            ptr_at::<[u8; 8]>(ctx, ETH_HLEN + IPV6_HLEN),
        ) else {
            return false;
        };
        let payload = (8 + QUOTE_V6) as u16;
        let m = (mtu.max(IPV6_MIN_MTU) as u32).to_be_bytes();
        let mut msg = [2, 0, 0, 0, m[0], m[1], m[2], m[3]];
        // Pseudo-header (both addresses, the ICMPv6 length, next header), then the message.
        let mut sum = words_sum(&pkt.flow.src) + words_sum(&pkt.flow.dst);
        sum += payload as u32 + IPPROTO_ICMPV6 as u32;
        let ck = csum::fold(csum::sum_bytes(&msg, sum + quote_sum)).to_be_bytes();
        msg[2] = ck[0];
        msg[3] = ck[1];
        unsafe {
            *e = reply_eth(&eth, ETH_P_IPV6);
            *ip = Ipv6Hdr {
                ver_tc_flow: (6u32 << 28).to_be(),
                payload_len: payload.to_be(),
                next_hdr: IPPROTO_ICMPV6,
                hop_limit: REPLY_TTL,
                src: pkt.flow.dst,
                dst: pkt.flow.src,
            };
            *icmp = msg;
        }
    }
    true
}

/// Copy the quoted bytes (`N` 32-bit words from the IP header on) to `to`, where the reply
/// carries them, and return their checksum sum. The ranges do not overlap (the quote is the IP
/// header plus 8 bytes; it moves past the new IP and ICMP headers), and nothing goes through the
/// stack, which the rest of the packet path already fills.
#[inline(always)]
fn move_quote<const N: usize>(ctx: &XdpContext, to: usize) -> Option<u32> {
    let from = ptr_at::<[u32; N]>(ctx, ETH_HLEN)?;
    let dst = ptr_at::<[u32; N]>(ctx, to)?;
    let mut sum = 0u32;
    for i in 0..N {
        let w = unsafe { (*from)[i] };
        unsafe { (*dst)[i] = w };
        let b = w.to_ne_bytes();
        sum += u16::from_be_bytes([b[0], b[1]]) as u32 + u16::from_be_bytes([b[2], b[3]]) as u32;
    }
    Some(sum)
}

/// Sum of an address's 16-bit words (network order), for pseudo-header checksums.
#[inline(always)]
fn words_sum(a: &[u32; 4]) -> u32 {
    let mut sum = 0u32;
    for w in a {
        let b = w.to_ne_bytes();
        sum += u16::from_be_bytes([b[0], b[1]]) as u32 + u16::from_be_bytes([b[2], b[3]]) as u32;
    }
    sum
}

/// The reply's Ethernet header: back to where the packet came from.
#[inline(always)]
fn reply_eth(eth: &EthHdr, ether_type: u16) -> EthHdr {
    EthHdr {
        dst: eth.src,
        src: eth.dst,
        ether_type: ether_type.to_be(),
    }
}
