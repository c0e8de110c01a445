//! Turning a setup's runs into medians, ratios, the printed tables and the JSON record.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::load::{Conns, Iperf};
use super::meter::Usage;

/// Everything measured for one setup (no LB, Sheave, HAProxy), in the order run.
#[derive(Debug, Default)]
pub struct Runs {
    /// `direct`, `sheave`, `haproxy`: the record's keys.
    pub key: &'static str,
    pub label: String,
    pub conns: Vec<(Conns, Usage)>,
    /// iperf3 client to server, then `-R`.
    pub up: Vec<(Iperf, Usage)>,
    pub down: Vec<(Iperf, Usage)>,
}

/// A setup's medians over its runs. CPU figures are in CPU-seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub conn_s: f64,
    pub conn_s_min: f64,
    pub conn_s_max: f64,
    pub failed: usize,
    pub lb_per_1000: Option<f64>,
    /// The whole machine's busy time less the background, per 1000 connections.
    pub machine_per_1000: f64,
    pub up_gbps: f64,
    pub down_gbps: f64,
    pub lb_per_gb_up: Option<f64>,
    pub lb_per_gb_down: Option<f64>,
}

/// The lower median (a value that was measured); NaN when empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

fn median_opt(v: Vec<Option<f64>>) -> Option<f64> {
    let v: Option<Vec<f64>> = v.into_iter().collect();
    v.map(median).filter(|m| m.is_finite())
}

fn per_gb(runs: &[(Iperf, Usage)]) -> Option<f64> {
    median_opt(
        runs.iter()
            .map(|(i, u)| u.lb_s.map(|s| s / (i.bytes as f64 / 1e9)))
            .collect(),
    )
}

impl Runs {
    pub fn summary(&self) -> Summary {
        let rates: Vec<f64> = self.conns.iter().map(|(c, _)| c.per_s()).collect();
        let per_1000 = |secs: f64, c: &Conns| secs / c.ok.max(1) as f64 * 1000.0;
        Summary {
            conn_s: median(rates.clone()),
            conn_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            conn_s_max: rates.iter().copied().fold(0.0, f64::max),
            failed: self
                .conns
                .iter()
                .map(|(c, _)| c.failed + c.not_attempted)
                .sum(),
            lb_per_1000: median_opt(
                self.conns
                    .iter()
                    .map(|(c, u)| u.lb_s.map(|s| per_1000(s, c)))
                    .collect(),
            ),
            machine_per_1000: median(
                self.conns
                    .iter()
                    .map(|(c, u)| per_1000(u.net_busy_s(), c))
                    .collect(),
            ),
            up_gbps: median(self.up.iter().map(|(i, _)| i.gbps).collect()),
            down_gbps: median(self.down.iter().map(|(i, _)| i.gbps).collect()),
            lb_per_gb_up: per_gb(&self.up),
            lb_per_gb_down: per_gb(&self.down),
        }
    }

    pub fn to_json(&self, direct: &Summary) -> Value {
        let s = self.summary();
        let conns: Vec<Value> = self
            .conns
            .iter()
            .map(|(c, u)| {
                json!({
                    "ok": c.ok, "failed": c.failed, "not_attempted": c.not_attempted,
                    "elapsed_ms": c.elapsed.as_millis() as u64, "conn_per_s": c.per_s(),
                    "errors": c.errors, "by_backend": c.by_backend, "cpu": u.to_json(),
                })
            })
            .collect();
        let iperf = |runs: &[(Iperf, Usage)]| -> Vec<Value> {
            runs.iter()
                .map(|(i, u)| {
                    json!({ "gbps": i.gbps, "bytes": i.bytes, "retransmits": i.retransmits,
                            "cpu": u.to_json() })
                })
                .collect()
        };
        json!({
            "label": self.label,
            "median": {
                "conn_per_s": s.conn_s,
                "failed_total": s.failed,
                "lb_cpu_s_per_1000_conns": s.lb_per_1000,
                "machine_cpu_s_per_1000_conns": s.machine_per_1000,
                "machine_cpu_s_per_1000_conns_over_direct": s.machine_per_1000 - direct.machine_per_1000,
                "iperf_up_gbps": s.up_gbps,
                "iperf_down_gbps": s.down_gbps,
                "lb_cpu_s_per_gb_up": s.lb_per_gb_up,
                "lb_cpu_s_per_gb_down": s.lb_per_gb_down,
            },
            "connections": conns,
            "iperf_up": iperf(&self.up),
            "iperf_down": iperf(&self.down),
        })
    }
}

/// `a / b` when both are meaningful (a CPU difference lost in the noise can be negative).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0).then(|| a / b)
}

/// Sheave over HAProxy for every headline figure.
pub fn ratios(direct: &Summary, sh: &Summary, ha: &Summary) -> Value {
    let over = |s: &Summary| s.machine_per_1000 - direct.machine_per_1000;
    let opt = |a: Option<f64>, b: Option<f64>| a.zip(b).and_then(|(a, b)| ratio(a, b));
    json!({
        "conn_per_s": ratio(sh.conn_s, ha.conn_s),
        "lb_cpu_s_per_1000_conns": opt(sh.lb_per_1000, ha.lb_per_1000),
        "machine_cpu_s_per_1000_conns_over_direct": ratio(over(sh), over(ha)),
        "iperf_up_gbps": ratio(sh.up_gbps, ha.up_gbps),
        "iperf_down_gbps": ratio(sh.down_gbps, ha.down_gbps),
        "lb_cpu_s_per_gb_up": opt(sh.lb_per_gb_up, ha.lb_per_gb_up),
        "lb_cpu_s_per_gb_down": opt(sh.lb_per_gb_down, ha.lb_per_gb_down),
    })
}

/// A CPU-seconds figure with three significant digits, or `-`.
fn secs(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let digits = if v.abs() >= 1.0 {
                2
            } else {
                (2 - v.abs().log10().floor() as i32).clamp(2, 6) as usize
            };
            format!("{v:.digits$}")
        }
        _ => "-".into(),
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or("-".into(), |r| format!("{r:.2}x"))
}

/// The two tables and how to read them.
pub fn table(all: &[&Runs; 3], head: &str) -> String {
    let sums: Vec<Summary> = all.iter().map(|r| r.summary()).collect();
    let (direct, sh, ha) = (&sums[0], &sums[1], &sums[2]);
    let over = |s: &Summary| s.machine_per_1000 - direct.machine_per_1000;
    let mut s = format!("\n{head}\n");
    let _ = writeln!(
        s,
        "  {:<26} {:>9} {:>17} {:>7} | {:>14} {:>13} {:>13}",
        "connections",
        "conn/s",
        "(min-max)",
        "failed",
        "LB's own CPU",
        "machine CPU",
        "over direct"
    );
    let _ = writeln!(s, "  {:<62} | {:^43}", "", "CPU-s per 1000 connections");
    for (r, m) in all.iter().zip(&sums) {
        let _ = writeln!(
            s,
            "  {:<26} {:>9.0} {:>17} {:>7} | {:>14} {:>13} {:>13}",
            r.label,
            m.conn_s,
            format!("({:.0}-{:.0})", m.conn_s_min, m.conn_s_max),
            m.failed,
            secs(m.lb_per_1000),
            secs(Some(m.machine_per_1000)),
            if r.key == "direct" {
                "-".into()
            } else {
                secs(Some(over(m)))
            },
        );
    }
    let _ = writeln!(
        s,
        "  {:<26} {:>9} {:>17} {:>7} | {:>14} {:>13} {:>13}",
        "Sheave / HAProxy",
        times(ratio(sh.conn_s, ha.conn_s)),
        "",
        "",
        times(
            sh.lb_per_1000
                .zip(ha.lb_per_1000)
                .and_then(|(a, b)| ratio(a, b))
        ),
        "",
        times(ratio(over(sh), over(ha))),
    );
    let _ = writeln!(
        s,
        "\n  {:<26} {:>12} {:>12} | {:>14} {:>14}",
        "iperf3 (median)", "Gbps up", "Gbps down", "LB CPU-s/GB up", "LB CPU-s/GB dn"
    );
    for (r, m) in all.iter().zip(&sums) {
        let _ = writeln!(
            s,
            "  {:<26} {:>12.2} {:>12.2} | {:>14} {:>14}",
            r.label,
            m.up_gbps,
            m.down_gbps,
            secs(m.lb_per_gb_up),
            secs(m.lb_per_gb_down)
        );
    }
    let opt = |a: Option<f64>, b: Option<f64>| a.zip(b).and_then(|(a, b)| ratio(a, b));
    let _ = writeln!(
        s,
        "  {:<26} {:>12} {:>12} | {:>14} {:>14}",
        "Sheave / HAProxy",
        times(ratio(sh.up_gbps, ha.up_gbps)),
        times(ratio(sh.down_gbps, ha.down_gbps)),
        times(opt(sh.lb_per_gb_up, ha.lb_per_gb_up)),
        times(opt(sh.lb_per_gb_down, ha.lb_per_gb_down)),
    );
    s.push_str(NOTES);
    s
}

pub const NOTES: &str = "
  How CPU was measured (client, LB, backends and other users' builds share the same CPUs):
  - LB's own CPU. HAProxy: user + system time of its process, all threads (/proc/PID/stat).
    Sheave: its XDP program's run time (the kernel's BPF run-time statistics, on during
    Sheave's runs only, adding two clock reads per packet) plus sheaved's process time.
    Neither is complete: this kernel charges softirq work to whichever task it interrupted, and
    over veth the receiver's processing runs in the sender's context, so HAProxy's figure
    includes some receive processing of the hosts it sends to and misses some of its own;
    Sheave's leaves out the veth and bridge work around its program.
  - machine CPU: all CPUs' busy time during the run (/proc/stat, 10 ms ticks), less other
    users' load as measured in an idle second just before it: client, LB and backends
    together. `over direct` subtracts the same figure without an LB, which is the LB's whole
    marginal cost, decap on Sheave's backends included. It is only as good as that background
    estimate, so it is noisy; compare medians, not single runs.
  How to read the throughput:
  - Sheave's backends answer the client directly (DSR), so iperf3 `down` (-R, server sends)
    bypasses Sheave but goes through HAProxy.
  - `up` through Sheave goes packet by packet: XDP runs before GRO and veth turns off GSO
    towards an XDP program, so it sees every 1500-byte frame, and veth copies a frame into an
    XDP buffer when the skb lacks XDP's headroom. HAProxy's kernel gets the client's segments
    merged by GRO (up to 64 KB) and sends TSO ones; in this lab that favours HAProxy on bulk
    uploads. Real NICs spread XDP over their receive queues; a veth has one.
  - During Sheave's runs the lb's switch port has checksum offload off, so that frames reach
    XDP with complete TCP checksums, as from a NIC (see servers.rs for why).
";
