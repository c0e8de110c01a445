//! The load balancer's XDP program. Follow a packet top to bottom in [`balance`]:
//! parse → VIP lookup → pick backend (flow table, else Maglev ring) → encapsulate → transmit.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Map keys are passed by reference on purpose: by value would copy the 40-byte flow key onto
// the BPF stack again on every lookup.
#![allow(clippy::needless_borrows_for_generic_args)]

// Bench-only entry points: in the bench object only (lb-userspace's `bench` feature).
#[cfg(feature = "bench")]
mod bench;
mod flood;
#[cfg(feature = "bench")]
mod floor;
mod lookup;
mod maps;
mod nexthop;
mod schedule;
mod stats;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    addr::FAMILY_V4,
    config::{outer_src_v4, outer_src_v6},
    stats::Stat,
};
use lb_ebpf::{
    encap,
    headers::ETH_HLEN,
    icmp,
    parse::{self, Parsed},
    transmit::{self, Next},
};

#[xdp(frags)]
pub fn sheave_lb(ctx: XdpContext) -> u32 {
    balance(&ctx)
}

/// The whole packet path. Every packet ends in exactly one outcome counter. Also run, unchanged,
/// by the bench-only entry point (`bench.rs`, built with the `bench` feature).
#[inline(always)]
fn balance(ctx: &XdpContext) -> u32 {
    let pkt = match parse::parse(ctx, &maps::PARSE_SCRATCH) {
        Ok(Parsed::Flow(pkt)) => pkt,
        Ok(Parsed::Echo(echo)) => return answer_echo(ctx, &echo),
        // Fragments, and what a router or host would refuse: never forwarded. For VIP
        // addresses they are dropped; the host's own traffic is the kernel's to judge.
        Ok(Parsed::Refused(r)) => {
            return if lookup::is_vip_address(&r.dst, r.family) {
                stats::drop(r.drop)
            } else {
                stats::pass(r.pass)
            };
        }
        Err(why) => return stats::pass(why),
    };
    let Some(vip) = lookup::vip(&pkt) else {
        return stats::pass(Stat::PassNoVip);
    };
    let frame_len = (ETH_HLEN + pkt.ip_len as usize) as u64;
    // One clock read per packet, for the flow's last-seen time and the next-hop cache.
    let now_ns = unsafe { bpf_ktime_get_coarse_ns() };
    let choice = match schedule::pick(&pkt, &vip, now_ns) {
        Ok(choice) => choice,
        Err(why) => {
            stats::vip_packet(vip.vip_id, frame_len, false);
            return stats::drop(why);
        }
    };
    stats::vip_packet(vip.vip_id, frame_len, choice.new_flow);
    if pkt.icmp_error {
        stats::event(Stat::IcmpErrorToBackend);
    }
    let Some(cfg) = lookup::config() else {
        return stats::drop(Stat::DropEncap);
    };
    let outer_src = if choice.backend.family == FAMILY_V4 {
        [outer_src_v4(&cfg, choice.hash), 0, 0, 0]
    } else {
        outer_src_v6(&cfg, choice.hash)
    };
    let outer_len = encap::outer_len(&choice.backend);
    let tot_len = pkt.ip_len as usize + outer_len;
    if tot_len > u16::MAX as usize {
        return stats::drop(Stat::DropTooBig);
    }
    let family = choice.backend.family;
    let tot_len = tot_len as u16;
    let next = match nexthop::cached(choice.backend_id, &choice.backend, tot_len, now_ns) {
        Some(hop) => Next::Forward(hop),
        None => {
            let next = transmit::route(ctx, family, &outer_src, &choice.backend.addr, tot_len);
            if let Next::Forward(hop) = &next {
                nexthop::store(choice.backend_id, &choice.backend, hop, tot_len, now_ns);
            }
            next
        }
    };
    let hop = match next {
        Next::Forward(hop) => Some(hop),
        Next::Kernel => None,
        Next::TooBig { mtu } => {
            // The sender must send packets small enough to fit with our outer header.
            let mtu = mtu.saturating_sub(outer_len as u16);
            return if icmp::too_big(ctx, &pkt, mtu) {
                stats::event(Stat::TxIcmpTooBig);
                xdp_action::XDP_TX
            } else {
                stats::drop(Stat::DropTooBig)
            };
        }
        Next::Drop => return stats::drop(Stat::DropNoRoute),
    };
    if let Err(why) = encap::encapsulate(ctx, &pkt, &choice.backend, &outer_src, choice.hash) {
        return stats::drop(why);
    }
    let (action, outcome) = match &hop {
        Some(hop) => transmit::send(ctx, hop),
        None => (xdp_action::XDP_PASS, Stat::PassNoNeigh),
    };
    stats::outcome(outcome);
    if action != xdp_action::XDP_DROP {
        stats::backend_packet(choice.backend_id, frame_len, choice.new_flow);
    }
    action
}

/// Echo requests to VIP addresses are answered here; others belong to the kernel.
#[inline(always)]
fn answer_echo(ctx: &XdpContext, echo: &parse::Echo) -> u32 {
    if lookup::is_vip_address(&echo.dst, echo.family) && icmp::echo_reply(ctx, echo) {
        stats::event(Stat::TxEchoReply);
        return xdp_action::XDP_TX;
    }
    stats::pass(Stat::PassNoVip)
}

// Built for the host only by `cargo clippy --workspace`; the panic handler and license live in
// the library.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
