//! `sheave status` and `sheave stats`, and how VIPs print.
use hyper::Method;

use super::{Failure, Global, api_call::show};
use crate::api::types::{StatsView, StatusView, VipView};

pub fn print_vip(v: &VipView) {
    let limit = match v.new_flow_limit {
        0 => String::new(),
        n => format!(", new-flow limit {n}/s"),
    };
    println!(
        "{}  (id {}, {:?} forwarding, ring size {}{limit}, {} ring rebuilds)",
        v.name, v.id, v.forwarding, v.ring_size, v.ring_rebuilds
    );
    if v.backends.is_empty() {
        println!("    no backends: new flows are dropped");
    }
    for b in &v.backends {
        println!(
            "    {:<40} weight {:>5}  {:<9} ring share {:>6.2}%",
            b.address.to_string(),
            b.weight,
            b.state,
            100.0 * b.ring_share
        );
    }
}

pub fn status(g: &Global) -> Result<(), Failure> {
    show(
        g,
        Method::GET,
        "/v1/status",
        None::<&()>,
        |s: &StatusView| {
            println!(
                "sheaved on {} ({} XDP), up {}s, {} VIP(s)",
                s.interface,
                s.xdp_mode,
                s.uptime_seconds,
                s.vips.len()
            );
            s.vips.iter().for_each(print_vip);
        },
    )
}

pub fn stats(g: &Global) -> Result<(), Failure> {
    show(g, Method::GET, "/v1/stats", None::<&()>, |s: &StatsView| {
        let head = |what: &str| {
            println!(
                "{what:<44} {:>12} {:>14} {:>10} {:>10} {:>12} {:>9}",
                "packets", "bytes", "new flows", "pkt/s", "bit/s", "flows/s"
            )
        };
        let row = |name: &str, t: &crate::api::types::TrafficView| {
            println!(
                "{name:<44} {:>12} {:>14} {:>10} {:>10.0} {:>12.0} {:>9.1}",
                t.packets,
                t.bytes,
                t.new_flows,
                t.packets_per_second,
                t.bits_per_second,
                t.new_flows_per_second
            )
        };
        if s.interval_seconds > 0.0 {
            println!("rates over the last {:.1}s", s.interval_seconds);
        } else {
            println!("rates: not yet sampled twice");
        }
        head("VIP");
        s.vips.iter().for_each(|(n, t)| row(n, t));
        head("backend");
        s.backends.iter().for_each(|(n, t)| row(n, t));
        println!("packet outcomes and flow-table events:");
        for (n, v) in &s.events {
            println!("    {n:<18} {v}");
        }
    })
}
