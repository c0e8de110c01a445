//! Step 5: find the next hop with the kernel's FIB and send the packet there.
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

/// Route the outer packet (`src` → `dst`, `tot_len` bytes) and return the XDP action with the
/// outcome to count.
///
/// Without a neighbour entry for the next hop the kernel gets the packet: it resolves the
/// neighbour and forwards this very packet, so the first packets to a new backend are not lost.
#[inline(always)]
pub fn transmit(
    ctx: &XdpContext,
    family: u8,
    src: &AddrWords,
    dst: &AddrWords,
    tot_len: u16,
) -> (u32, Stat) {
    let ingress = ctx.ingress_ifindex() as u32;
    let mut p: FibParams = unsafe { core::mem::zeroed() };
    p.ifindex = ingress;
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
        BPF_FIB_LKUP_RET_SUCCESS => {
            let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
                return (xdp_action::XDP_DROP, Stat::DropEncap);
            };
            unsafe {
                (*eth).dst = p.dmac;
                (*eth).src = p.smac;
            }
            if p.ifindex == ingress {
                (xdp_action::XDP_TX, Stat::Tx)
            } else {
                (unsafe { bpf_redirect(p.ifindex, 0) } as u32, Stat::Redirect)
            }
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => (xdp_action::XDP_PASS, Stat::PassNoNeigh),
        BPF_FIB_LKUP_RET_FRAG_NEEDED => (xdp_action::XDP_DROP, Stat::DropTooBig),
        _ => (xdp_action::XDP_DROP, Stat::DropNoRoute),
    }
}
