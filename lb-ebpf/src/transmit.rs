//! Step 5: find the next hop with the kernel's FIB (before encapsulating, so a packet that would
//! not fit can still be answered with an ICMP error), then send the packet there.
use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        bpf_fib_lookup as FibParams, xdp_action,
    },
    helpers::{bpf_fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use lb_common::{
    addr::{AddrWords, FAMILY_V4},
    stats::Stat,
};

use crate::{headers::EthHdr, packet::ptr_at};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Where the encapsulated packet goes.
pub enum Next {
    /// Out of `ifindex` to `dmac`.
    Forward(Hop),
    /// No neighbour entry for the next hop yet: the kernel gets the packet, resolves the
    /// neighbour and forwards this very packet, so the first packets to a new backend are not
    /// lost.
    Kernel,
    /// The encapsulated packet would exceed the egress MTU, which is this many bytes.
    TooBig { mtu: u16 },
    /// No route, or forwarding disabled.
    Drop,
}

pub struct Hop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// Route the outer packet `src` → `dst` of `tot_len` bytes.
#[inline(always)]
pub fn route(ctx: &XdpContext, family: u8, src: &AddrWords, dst: &AddrWords, tot_len: u16) -> Next {
    let mut p: FibParams = unsafe { core::mem::zeroed() };
    p.ifindex = ctx.ingress_ifindex() as u32;
    p.__bindgen_anon_1.tot_len = tot_len;
    if family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = src[0];
        p.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        p.family = AF_INET6;
        p.__bindgen_anon_3.ipv6_src = *src;
        p.__bindgen_anon_4.ipv6_dst = *dst;
    }
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &mut p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    } as u32;
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => Next::Forward(Hop {
            ifindex: p.ifindex,
            smac: p.smac,
            dmac: p.dmac,
        }),
        BPF_FIB_LKUP_RET_NO_NEIGH => Next::Kernel,
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Next::TooBig {
            mtu: unsafe { p.__bindgen_anon_1.mtu_result },
        },
        _ => Next::Drop,
    }
}

/// Send the (encapsulated) packet to `hop`: XDP_TX out of the ingress interface, else
/// XDP_REDIRECT. Returns the action with the outcome to count.
#[inline(always)]
pub fn send(ctx: &XdpContext, hop: &Hop) -> (u32, Stat) {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return (xdp_action::XDP_DROP, Stat::DropEncap);
    };
    unsafe {
        (*eth).dst = hop.dmac;
        (*eth).src = hop.smac;
    }
    if hop.ifindex == ctx.ingress_ifindex() as u32 {
        (xdp_action::XDP_TX, Stat::Tx)
    } else {
        (
            unsafe { bpf_redirect(hop.ifindex, 0) } as u32,
            Stat::Redirect,
        )
    }
}
