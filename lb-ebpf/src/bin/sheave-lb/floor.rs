//! Bench-only entry point (`sheave_flow_floor`): the flow table's share of a packet's cost and
//! nothing else. It parses with the production parser, then does what [`crate::schedule::pick`]
//! does to the same `FLOWS` map: one lookup and, on a miss, one insert. `cargo xtask bench
//! packet` times it with exactly the packets and table state of each `sheave_lb` case, so that
//! a case's figure splits into what the kernel's map costs and what Sheave adds around it. It
//! counts hits, misses and forwards like `sheave_lb`, so the benchmark's checks apply to it
//! too. Built only with the `bench` feature, into an object the daemon never embeds.
use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    flow::{FlowState, flow_tick},
    stats::Stat,
};
use lb_ebpf::parse::{self, Parsed};

use crate::{maps::FLOWS, stats};

#[xdp(frags)]
pub fn sheave_flow_floor(ctx: XdpContext) -> u32 {
    let Ok(Parsed::Flow(pkt)) = parse::parse(&ctx, &crate::maps::PARSE_SCRATCH) else {
        return xdp_action::XDP_PASS;
    };
    if FLOWS.get_ptr_mut(&pkt.flow).is_some() {
        stats::event(Stat::FlowHit);
    } else {
        stats::event(Stat::FlowMiss);
        let state = FlowState {
            backend_id: 0,
            hash: 0,
            flags: 0,
            last_seen: flow_tick(unsafe { bpf_ktime_get_coarse_ns() }),
            syn_seq: pkt.tcp_seq,
        };
        let _ = FLOWS.insert(&pkt.flow, &state, 0);
    }
    stats::outcome(Stat::Tx);
    xdp_action::XDP_TX
}
