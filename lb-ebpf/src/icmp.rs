//! Answering ICMP/ICMPv6 echo requests to VIP addresses in place, so operators and monitoring
//! can ping a VIP (no backend is involved).
use aya_ebpf::programs::XdpContext;
use lb_common::addr::FAMILY_V4;

use crate::{
    csum,
    headers::{ETH_HLEN, EthHdr, IPV4_HLEN, Ipv4Hdr, Ipv6Hdr},
    packet::ptr_at,
    parse::Echo,
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
