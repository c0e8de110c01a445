//! Prometheus metrics.
//!
//! A scrape never holds up a change: the control task only hands over a [`Snapshot`] of the
//! state the gauges describe (names, weights, member states: a copy, no rendering), and the
//! `/metrics` handler reads the per-CPU counter maps through its own handles
//! ([`Counters::duplicate`]) and writes the text off the control task, straight into one string
//! (the per-scrape series are not built as a `prometheus` registry first: at 500 VIPs × 32
//! backends that took half a second and hundreds of megabytes). Values are exactly the kernel's
//! at the scrape. The daemon's own metrics (API requests, transitions, check durations, build
//! info) live in a long-lived `prometheus` registry and are appended with its encoder.
use std::fmt::Write as _;

use lb_common::stats::{Counter, Handshakes, STAT_NAMES};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};

use crate::{dataplane::counters::Counters, state::MemberState};

/// Metrics the daemon itself maintains.
pub struct DaemonMetrics {
    registry: Registry,
    /// `sheave_api_requests_total{endpoint, result}`.
    pub requests: IntCounterVec,
    /// `sheave_backend_transitions_total{vip, backend, from, to}`.
    pub transitions: IntCounterVec,
    /// `sheave_health_check_duration_seconds{backend, check}`.
    pub check_duration: HistogramVec,
    /// `sheave_backend_ejections_total{backend}`.
    pub ejections: IntCounterVec,
}

impl DaemonMetrics {
    pub fn new() -> DaemonMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "sheave_api_requests_total",
                "API requests by endpoint and result",
            ),
            &["endpoint", "result"],
        )
        .expect("valid metric");
        let build = IntGaugeVec::new(
            Opts::new(
                "sheave_build_info",
                "Always 1; labels say which build is running",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let transitions = IntCounterVec::new(
            Opts::new(
                "sheave_backend_transitions_total",
                "Backend state changes per VIP (health checks, operator, drains)",
            ),
            &["vip", "backend", "from", "to"],
        )
        .expect("valid metric");
        let check_duration = HistogramVec::new(
            HistogramOpts::new(
                "sheave_health_check_duration_seconds",
                "Time a health check took (until its verdict, including failures)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["backend", "check"],
        )
        .expect("valid metric");
        let ejections = IntCounterVec::new(
            Opts::new(
                "sheave_backend_ejections_total",
                "Backends ejected by passive outlier detection",
            ),
            &["backend"],
        )
        .expect("valid metric");
        for c in [
            Box::new(ejections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(build),
            Box::new(transitions.clone()),
            Box::new(check_duration.clone()),
        ] {
            registry.register(c).expect("unique");
        }
        DaemonMetrics {
            registry,
            requests,
            transitions,
            check_duration,
            ejections,
        }
    }
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the gauges describe, copied out of the control task for one scrape.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub vips: Vec<VipGauge>,
    pub members: Vec<MemberGauge>,
    /// Backend ids in use and their addresses.
    pub backends: Vec<(u32, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VipGauge {
    pub name: String,
    pub id: u32,
    pub rebuilds: u64,
    pub all_down: bool,
}

/// A VIP member's state for the gauges.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberGauge {
    pub vip: String,
    pub backend: String,
    pub weight: u16,
    pub state: String,
    /// Live flows while draining.
    pub flows: Option<u64>,
}

/// A counter family read from `Handshakes`: name, help, which field.
type HandshakeFamily = (&'static str, &'static str, fn(&Handshakes) -> u64);

/// A counter family read from a `Counter`: name, help, which field.
type CounterFamily = (&'static str, &'static str, fn(&Counter) -> u64);

/// Which XDP action an outcome counter stands for, and why.
fn action_reason(stat: &str) -> Option<(&'static str, &str)> {
    if let Some(r) = stat.strip_prefix("pass_") {
        Some(("pass", r))
    } else if let Some(r) = stat.strip_prefix("drop_") {
        Some(("drop", r))
    } else if let Some(r) = stat.strip_prefix("tx_") {
        Some(("tx", r))
    } else if stat == "tx" {
        Some(("tx", "forwarded"))
    } else if stat == "redirect" {
        Some(("redirect", "forwarded"))
    } else {
        None
    }
}

/// Prometheus text exposition, written as it goes: a family's help and type line, then its
/// samples (a family without samples is left out, as client libraries do).
struct Text {
    out: String,
    /// The family whose header is pending until its first sample.
    header: Option<String>,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.header = Some(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if let Some(h) = self.header.take() {
            self.out.push_str(&h);
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        v.into()
    }
}

/// The full exposition: data-plane counters read from `counters` now, the state gauges of
/// `snap`, the daemon's own metrics. A counter map that cannot be read leaves its families out
/// (and says so in the log); the rest is still served.
pub fn render(api: &DaemonMetrics, snap: &Snapshot, counters: &Counters) -> String {
    let mut t = Text {
        out: String::with_capacity(256 + 200 * (snap.members.len() * 7 + snap.vips.len() * 5)),
        header: None,
    };
    let read = |what: &str, r: anyhow::Result<Counter>| {
        r.map_err(|e| log::warn!("reading {what} for /metrics: {e:#}"))
            .ok()
    };
    let vip_counts: Vec<(&VipGauge, Option<Counter>)> = snap
        .vips
        .iter()
        .map(|v| (v, read("VIP counters", counters.vip(v.id))))
        .collect();
    let families: [CounterFamily; 3] = [
        (
            "sheave_vip_packets_total",
            "Packets received for a VIP",
            |c| c.packets,
        ),
        (
            "sheave_vip_bytes_total",
            "Bytes received for a VIP (Ethernet frames)",
            |c| c.bytes,
        ),
        (
            "sheave_vip_new_flows_total",
            "Flows scheduled on a VIP's ring",
            |c| c.new_flows,
        ),
    ];
    for (name, help, field) in families {
        t.family(name, "counter", help);
        for (v, c) in &vip_counts {
            if let Some(c) = c {
                t.sample(name, &[("vip", &v.name)], field(c));
            }
        }
    }
    let be_counts: Vec<(&str, Option<Counter>)> = snap
        .backends
        .iter()
        .map(|(id, addr)| {
            (
                addr.as_str(),
                read("backend counters", counters.backend(*id)),
            )
        })
        .collect();
    let families: [CounterFamily; 3] = [
        (
            "sheave_backend_packets_total",
            "Packets forwarded to a backend",
            |c| c.packets,
        ),
        (
            "sheave_backend_bytes_total",
            "Bytes forwarded to a backend (before encapsulation)",
            |c| c.bytes,
        ),
        (
            "sheave_backend_new_flows_total",
            "New flows scheduled to a backend",
            |c| c.new_flows,
        ),
    ];
    for (name, help, field) in families {
        t.family(name, "counter", help);
        for (addr, c) in &be_counts {
            if let Some(c) = c {
                t.sample(name, &[("backend", addr)], field(c));
            }
        }
    }
    let handshakes: Vec<(&str, Option<Handshakes>)> = snap
        .backends
        .iter()
        .map(|(id, addr)| {
            let h = counters
                .handshakes(*id)
                .map_err(|e| log::warn!("reading connection attempts for /metrics: {e:#}"))
                .ok();
            (addr.as_str(), h)
        })
        .collect();
    let families: [HandshakeFamily; 3] = [
        (
            "sheave_backend_connection_attempts_total",
            "TCP connection attempts (a SYN) scheduled to a backend",
            |h| h.attempts,
        ),
        (
            "sheave_backend_answered_attempts_total",
            "Connection attempts the client went on to ACK: the backend answered",
            |h| h.answered,
        ),
        (
            "sheave_backend_unanswered_attempts_total",
            "Connection attempts whose SYN the client sent again: the backend did not answer",
            |h| h.retransmitted,
        ),
    ];
    for (name, help, field) in families {
        t.family(name, "counter", help);
        for (addr, h) in &handshakes {
            if let Some(h) = h {
                t.sample(name, &[("backend", addr)], field(h));
            }
        }
    }
    match counters.global() {
        Ok(events) => global_families(&mut t, &events),
        Err(e) => log::warn!("reading the outcome counters for /metrics: {e:#}"),
    }
    t.family(
        "sheave_ring_rebuilds_total",
        "counter",
        "Maglev rings published per VIP",
    );
    for v in &snap.vips {
        t.sample(
            "sheave_ring_rebuilds_total",
            &[("vip", &v.name)],
            v.rebuilds,
        );
    }
    t.family(
        "sheave_backend_weight",
        "gauge",
        "Configured weight of a backend in a VIP",
    );
    for m in &snap.members {
        t.sample(
            "sheave_backend_weight",
            &[("vip", &m.vip), ("backend", &m.backend)],
            m.weight,
        );
    }
    t.family(
        "sheave_backend_state",
        "gauge",
        "1 for the state a backend is in, per VIP",
    );
    for m in &snap.members {
        for s in MemberState::ALL {
            let on = u8::from(s.name() == m.state);
            let labels = [
                ("vip", m.vip.as_str()),
                ("backend", &m.backend),
                ("state", s.name()),
            ];
            t.sample("sheave_backend_state", &labels, on);
        }
    }
    t.family(
        "sheave_backend_draining_flows",
        "gauge",
        "Flows still on a draining backend (flow-table entries seen recently, not closed)",
    );
    for m in &snap.members {
        if let Some(n) = m.flows {
            let labels = [("vip", m.vip.as_str()), ("backend", &m.backend)];
            t.sample("sheave_backend_draining_flows", &labels, n);
        }
    }
    t.family(
        "sheave_vip_all_backends_down",
        "gauge",
        "1 while every backend of the VIP is down (see all_backends_down)",
    );
    for v in &snap.vips {
        t.sample(
            "sheave_vip_all_backends_down",
            &[("vip", &v.name)],
            u8::from(v.all_down),
        );
    }
    t.out + &render_api_only(api)
}

/// The outcome and flow-table counters, by XDP action and reason or lookup result.
fn global_families(t: &mut Text, events: &[u64]) {
    let named = || STAT_NAMES.iter().copied().zip(events.iter().copied());
    t.family(
        "sheave_flow_table_lookups_total",
        "counter",
        "Flow-table lookups by result",
    );
    for (name, value) in named() {
        if let Some(result) = name.strip_prefix("flow_") {
            t.sample(
                "sheave_flow_table_lookups_total",
                &[("result", result)],
                value,
            );
        }
    }
    t.family(
        "sheave_xdp_packets_total",
        "counter",
        "Packets by XDP action and reason",
    );
    for (name, value) in named() {
        if let Some((action, reason)) = action_reason(name) {
            let labels = [("action", action), ("reason", reason)];
            t.sample("sheave_xdp_packets_total", &labels, value);
        }
    }
    for (stat, name, help) in [
        (
            "flood_not_inserted",
            "sheave_flood_guard_skipped_inserts_total",
            "New flows forwarded but not put in the flow table: their VIP was above its new-flow limit",
        ),
        (
            "icmp_error_to_backend",
            "sheave_icmp_errors_to_backends_total",
            "ICMP errors about VIP flows forwarded to the flows' backends",
        ),
    ] {
        t.family(name, "counter", help);
        for (n, value) in named() {
            if n == stat {
                t.sample(name, &[], value);
            }
        }
    }
}

/// The daemon's own metrics (also all there is when the maps cannot be read).
pub fn render_api_only(api: &DaemonMetrics) -> String {
    TextEncoder::new()
        .encode_to_string(&api.registry.gather())
        .expect("text encoding cannot fail for valid families")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_grouped_escaped_and_leaves_empty_families_out() {
        let mut t = Text {
            out: String::new(),
            header: None,
        };
        t.family("a_total", "counter", "A");
        t.family("b", "gauge", "B");
        t.sample("b", &[("x", "q\"uote\\n")], 2);
        t.sample("b", &[], 3);
        assert_eq!(
            t.out,
            "# HELP b B\n# TYPE b gauge\nb{x=\"q\\\"uote\\\\n\"} 2\nb 3\n"
        );
    }
}
