//! Step 4: wrap the packet in an outer IPv4 or IPv6 header addressed to the backend (DSR: the
//! backend removes it and answers the client directly, with the VIP as source).
//!
//! The inner family follows the VIP and the outer family the backend, so all four combinations
//! (IPIP, IP6IP6, and the mixed 4-in-6 / 6-in-4) come out of the same code.
use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lb_common::{
    addr::{AddrWords, FAMILY_V4},
    backend::Backend,
    stats::Stat,
};

use crate::{
    csum,
    headers::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_IPIP, IPPROTO_IPV6, IPV4_DF, IPV4_HLEN,
        IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, OUTER_TTL,
    },
    packet::ptr_at,
    parse::Packet,
};

/// What the next step needs to route the encapsulated packet.
pub struct Outer {
    /// Total length of the outer IP packet (outer header included), host order.
    pub tot_len: u16,
}

/// Bytes the outer header adds for a backend of this family.
#[inline(always)]
pub fn outer_len(backend: &Backend) -> usize {
    if backend.family == FAMILY_V4 {
        IPV4_HLEN
    } else {
        IPV6_HLEN
    }
}

/// Prepend Ethernet + outer IP header in front of the packet's IP header. The Ethernet header
/// keeps the packet's original MACs until [`crate::transmit`] sets the next hop's; if the packet
/// ends up handed to the kernel instead, those MACs still say "for this host".
#[inline(always)]
pub fn encapsulate(
    ctx: &XdpContext,
    pkt: &Packet,
    backend: &Backend,
    outer_src: &AddrWords,
    hash: u32,
) -> Result<Outer, Stat> {
    let outer_v4 = backend.family == FAMILY_V4;
    let outer_len = if outer_v4 { IPV4_HLEN } else { IPV6_HLEN };
    let tot_len = pkt.ip_len as usize + outer_len;
    if tot_len > u16::MAX as usize {
        return Err(Stat::DropTooBig);
    }
    let inner_proto = if pkt.flow.family == FAMILY_V4 {
        IPPROTO_IPIP
    } else {
        IPPROTO_IPV6
    };

    // The old Ethernet header overlaps where the outer header goes: copy it out first.
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Stat::DropEncap)?;
    let old_eth = unsafe { *eth };
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(outer_len as i32)) } != 0 {
        return Err(Stat::DropEncap);
    }

    let eth: *mut EthHdr = ptr_at(ctx, 0).ok_or(Stat::DropEncap)?;
    let ether_type = if outer_v4 { ETH_P_IP } else { ETH_P_IPV6 };
    unsafe {
        *eth = EthHdr {
            dst: old_eth.dst,
            src: old_eth.src,
            ether_type: ether_type.to_be(),
        };
    }

    if outer_v4 {
        let mut hdr = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: pkt.tos,
            tot_len: (tot_len as u16).to_be(),
            id: 0,
            frag_off: if pkt.dont_fragment {
                IPV4_DF.to_be()
            } else {
                0
            },
            ttl: OUTER_TTL,
            proto: inner_proto,
            check: 0,
            src: outer_src[0],
            dst: backend.addr[0],
        };
        hdr.check = csum::ipv4_header(&hdr);
        let outer: *mut Ipv4Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::DropEncap)?;
        unsafe { *outer = hdr };
    } else {
        // The flow label carries flow entropy too, for ECMP routers that hash on it.
        let first = (6u32 << 28) | ((pkt.tos as u32) << 20) | (hash & 0x000F_FFFF);
        let hdr = Ipv6Hdr {
            ver_tc_flow: first.to_be(),
            payload_len: pkt.ip_len.to_be(),
            next_hdr: inner_proto,
            hop_limit: OUTER_TTL,
            src: *outer_src,
            dst: backend.addr,
        };
        let outer: *mut Ipv6Hdr = ptr_at(ctx, ETH_HLEN).ok_or(Stat::DropEncap)?;
        unsafe { *outer = hdr };
    }
    Ok(Outer {
        tot_len: tot_len as u16,
    })
}
