//! Prometheus metrics (text exposition via the `prometheus` crate).
//!
//! Data-plane counters live in per-CPU maps; at each scrape they are summed over CPUs and exposed
//! as counters built for that scrape (so values are exactly the kernel's). API request counts and
//! build info live in a long-lived registry.
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::{
    control::stats::Sample,
    state::{MemberState, State},
};

/// Metrics the daemon itself maintains.
pub struct DaemonMetrics {
    registry: Registry,
    /// `sheave_api_requests_total{endpoint, result}`.
    pub requests: IntCounterVec,
    /// `sheave_backend_transitions_total{vip, backend, from, to}`.
    pub transitions: IntCounterVec,
    /// `sheave_health_check_duration_seconds{backend, check}`.
    pub check_duration: HistogramVec,
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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
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
        }
    }
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique");
    g
}

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

/// A VIP member's state for the gauges.
pub struct MemberGauge {
    pub vip: String,
    pub backend: String,
    pub state: &'static str,
    /// Live flows while draining.
    pub flows: Option<u64>,
}

/// The full exposition: data-plane counters from `sample`, state gauges, API metrics.
pub fn render(
    api: &DaemonMetrics,
    state: &State,
    sample: &Sample,
    members: &[MemberGauge],
    all_down: &[(String, bool)],
) -> String {
    let r = Registry::new();
    let vip_packets = counter(
        &r,
        "sheave_vip_packets_total",
        "Packets received for a VIP",
        &["vip"],
    );
    let vip_bytes = counter(
        &r,
        "sheave_vip_bytes_total",
        "Bytes received for a VIP (Ethernet frames)",
        &["vip"],
    );
    let vip_flows = counter(
        &r,
        "sheave_vip_new_flows_total",
        "Flows scheduled on a VIP's ring",
        &["vip"],
    );
    let be_packets = counter(
        &r,
        "sheave_backend_packets_total",
        "Packets forwarded to a backend",
        &["backend"],
    );
    let be_bytes = counter(
        &r,
        "sheave_backend_bytes_total",
        "Bytes forwarded to a backend (before encapsulation)",
        &["backend"],
    );
    let be_flows = counter(
        &r,
        "sheave_backend_new_flows_total",
        "New flows scheduled to a backend",
        &["backend"],
    );
    let lookups = counter(
        &r,
        "sheave_flow_table_lookups_total",
        "Flow-table lookups by result",
        &["result"],
    );
    let xdp = counter(
        &r,
        "sheave_xdp_packets_total",
        "Packets by XDP action and reason",
        &["action", "reason"],
    );
    let rebuilds = counter(
        &r,
        "sheave_ring_rebuilds_total",
        "Maglev rings published per VIP",
        &["vip"],
    );
    let flood = counter(
        &r,
        "sheave_flood_guard_skipped_inserts_total",
        "New flows forwarded but not put in the flow table: their VIP was above its new-flow limit",
        &[],
    );
    let icmp_errors = counter(
        &r,
        "sheave_icmp_errors_to_backends_total",
        "ICMP errors about VIP flows forwarded to the flows' backends",
        &[],
    );
    let weight = gauge(
        &r,
        "sheave_backend_weight",
        "Configured weight of a backend in a VIP",
        &["vip", "backend"],
    );
    let bstate = gauge(
        &r,
        "sheave_backend_state",
        "1 for the state a backend is in, per VIP",
        &["vip", "backend", "state"],
    );

    for v in &state.vips {
        let name = v.spec.name();
        let c = sample.vips.get(&v.id).copied().unwrap_or_default();
        vip_packets.with_label_values(&[&name]).inc_by(c.packets);
        vip_bytes.with_label_values(&[&name]).inc_by(c.bytes);
        vip_flows.with_label_values(&[&name]).inc_by(c.new_flows);
        rebuilds.with_label_values(&[&name]).inc_by(v.rebuilds);
        for m in &v.members {
            let addr = state.backend_address(m.backend_id).to_string();
            weight
                .with_label_values(&[&name, &addr])
                .set(m.weight as i64);
        }
    }
    let draining_flows = gauge(
        &r,
        "sheave_backend_draining_flows",
        "Flows still on a draining backend (flow-table entries seen recently, not closed)",
        &["vip", "backend"],
    );
    for m in members {
        for s in MemberState::ALL {
            let on = s.name() == m.state;
            bstate
                .with_label_values(&[&m.vip, &m.backend, s.name()])
                .set(on as i64);
        }
        if let Some(n) = m.flows {
            draining_flows
                .with_label_values(&[&m.vip, &m.backend])
                .set(n as i64);
        }
    }
    let vip_down = gauge(
        &r,
        "sheave_vip_all_backends_down",
        "1 while every backend of the VIP is down (see all_backends_down)",
        &["vip"],
    );
    for (vip, down) in all_down {
        vip_down.with_label_values(&[vip]).set(*down as i64);
    }
    for (id, addr) in state.backends() {
        let c = sample.backends.get(&id).copied().unwrap_or_default();
        let a = addr.to_string();
        be_packets.with_label_values(&[&a]).inc_by(c.packets);
        be_bytes.with_label_values(&[&a]).inc_by(c.bytes);
        be_flows.with_label_values(&[&a]).inc_by(c.new_flows);
    }
    for (name, value) in lb_common::stats::STAT_NAMES.iter().zip(sample.events) {
        if *name == "flood_not_inserted" {
            flood.with_label_values(&[] as &[&str]).inc_by(value);
        } else if *name == "icmp_error_to_backend" {
            icmp_errors.with_label_values(&[] as &[&str]).inc_by(value);
        } else if let Some(result) = name.strip_prefix("flow_") {
            lookups.with_label_values(&[result]).inc_by(value);
        } else if let Some((action, reason)) = action_reason(name) {
            xdp.with_label_values(&[action, reason]).inc_by(value);
        }
    }
    let mut families = r.gather();
    families.extend(api.registry.gather());
    TextEncoder::new()
        .encode_to_string(&families)
        .expect("text encoding cannot fail for valid families")
}

/// When the maps cannot be read: at least the daemon's own metrics.
pub fn render_api_only(api: &DaemonMetrics) -> String {
    TextEncoder::new()
        .encode_to_string(&api.registry.gather())
        .expect("text encoding cannot fail for valid families")
}
