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
    if v.all_down {
        println!(
            "    EVERY BACKEND IS DOWN: {}",
            if v.all_backends_down == "drop" {
                "new flows are dropped"
            } else {
                "failing open (new flows still go to them)"
            }
        );
    }
    if v.backends.is_empty() {
        println!("    no backends: new flows are dropped");
    }
    for b in &v.backends {
        let weight = if b.effective_weight != b.weight as f64 && b.state == "slow-start" {
            format!("{:.0}/{}", b.effective_weight, b.weight)
        } else {
            b.weight.to_string()
        };
        let mut detail = Vec::new();
        if !b.reason.is_empty() && b.state != "up" {
            detail.push(b.reason.clone());
        }
        if let Some(n) = b.flows {
            detail.push(format!("{n} flows left"));
        }
        if let Some(t) = b.drain_remaining_seconds {
            detail.push(format!("timeout in {t:.0}s"));
        }
        if let Some(c) = &b.check {
            detail.push(format!(
                "{} check: {} ({:.1} ms)",
                c.kind, c.last, c.latency_ms
            ));
        }
        println!(
            "    {:<40} weight {:>11}  {:<10} ring share {:>6.2}%  {}",
            b.address.to_string(),
            weight,
            b.state,
            100.0 * b.ring_share,
            detail.join("; ")
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
