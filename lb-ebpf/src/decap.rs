//! The backends' side: strip the outer header the load balancer added, for VIPs this backend
//! serves, and hand the inner packet to the kernel as if it had arrived unencapsulated.
//!
//! This replaces the `ipip`/`ip6_tunnel` modules on backends that lack them, and costs less: the
//! kernel never builds a tunnel skb.
use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lb_common::{
    addr::{FAMILY_V4, FAMILY_V6},
    decap::DecapKey,
    stats::DecapStat,
};

use crate::{
    headers::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_IPIP, IPPROTO_IPV6, IPV4_FRAG_MASK,
        IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr,
    },
    packet::{holds, ptr_at},
};

/// Decapsulate the packet if it carries one of our VIPs inside; `is_vip` asks the program's map.
#[inline(always)]
pub fn decapsulate(ctx: &XdpContext, is_vip: impl Fn(&DecapKey) -> bool) -> DecapStat {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return DecapStat::Pass;
    };
    let eth = unsafe { *eth };
    // Outer header: its length, which inner protocol it carries, and where the outer packet
    // ends (its stated length: bytes after it, like Ethernet padding, are not part of it).
    let (outer_len, inner_proto, outer_end) = match u16::from_be(eth.ether_type) {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN) else {
                return DecapStat::Pass;
            };
            let ip = unsafe { &*ip };
            let ihl = ((ip.ver_ihl & 0x0F) as usize) * 4;
            // A fragmented outer packet needs reassembly first: the kernel's job.
            if ip.ver_ihl >> 4 != 4
                || ihl < IPV4_HLEN
                || u16::from_be(ip.frag_off) & IPV4_FRAG_MASK != 0
            {
                return DecapStat::Pass;
            }
            (ihl, ip.proto, ETH_HLEN + u16::from_be(ip.tot_len) as usize)
        }
        ETH_P_IPV6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_HLEN) else {
                return DecapStat::Pass;
            };
            let ip = unsafe { &*ip };
            if u32::from_be(ip.ver_tc_flow) >> 28 != 6 {
                return DecapStat::Pass;
            }
            let end = ETH_HLEN + IPV6_HLEN + u16::from_be(ip.payload_len) as usize;
            (IPV6_HLEN, ip.next_hdr, end)
        }
        _ => return DecapStat::Pass,
    };
    let inner_off = ETH_HLEN + outer_len;
    let (key, inner_type, inner_hlen) = match inner_proto {
        IPPROTO_IPIP => {
            let Some(inner) = ptr_at::<Ipv4Hdr>(ctx, inner_off) else {
                return DecapStat::DropMalformed;
            };
            let inner = unsafe { &*inner };
            let key = DecapKey {
                addr: [inner.dst, 0, 0, 0],
                family: FAMILY_V4,
                _pad: [0; 3],
            };
            // The inner packet must be what the outer protocol says it is; if not, it is not
            // ours to unwrap and the kernel decides.
            if inner.ver_ihl >> 4 != 4 {
                return DecapStat::Pass;
            }
            (key, ETH_P_IP, IPV4_HLEN)
        }
        IPPROTO_IPV6 => {
            let Some(inner) = ptr_at::<Ipv6Hdr>(ctx, inner_off) else {
                return DecapStat::DropMalformed;
            };
            let inner = unsafe { &*inner };
            let key = DecapKey {
                addr: inner.dst,
                family: FAMILY_V6,
                _pad: [0; 3],
            };
            if u32::from_be(inner.ver_tc_flow) >> 28 != 6 {
                return DecapStat::Pass;
            }
            (key, ETH_P_IPV6, IPV6_HLEN)
        }
        _ => return DecapStat::Pass,
    };
    // The inner header must lie within the outer packet's stated length (else: not a valid
    // encapsulated packet, the kernel decides).
    if inner_off + inner_hlen > outer_end {
        return DecapStat::Pass;
    }
    // ...and the outer packet must not claim more than arrived. Checked after the header reads
    // on purpose (see `parse::fits`).
    if !holds(ctx, outer_end) {
        return DecapStat::Pass;
    }
    if !is_vip(&key) {
        return DecapStat::Pass;
    }
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer_len as i32) } != 0 {
        return DecapStat::DropMalformed;
    }
    let Some(new_eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return DecapStat::DropMalformed;
    };
    unsafe {
        *new_eth = EthHdr {
            dst: eth.dst,
            src: eth.src,
            ether_type: inner_type.to_be(),
        };
    }
    DecapStat::Decapsulated
}
