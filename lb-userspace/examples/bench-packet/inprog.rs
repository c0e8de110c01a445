//! In-program timing: the bench-only entry point (`sheave_lb_bench`) runs the production packet
//! function N times per program run in a `bpf_loop`, restoring the frame between iterations,
//! and reports `bpf_ktime_get_ns()` around the loop. Net of a restore-only loop, this is the
//! packet path's cost without test_run's own overhead — the figure the kernel's XDP LB
//! benchmark reports. Runs after the case's test_run trials, on the same maps.
use anyhow::{Result, ensure};
use lb_common::bench::{BENCH_MODE_BALANCE, BENCH_MODE_RESTORE_ONLY, BenchConfig};
use lb_userspace::{dataplane::Dataplane, testkit::packets};
use serde_json::{Value, json};

use crate::{
    cases::{self, Case, Traffic},
    report::median,
    run::call,
};

/// Iterations per program run, and runs per mode.
pub const ITERATIONS: u32 = 64;
pub const RUNS: u32 = 200;
/// Sources of the new-flow cases' iterations: 198.19.0.0/16 (v4) or the last 32 bits of the v6
/// client prefix, one per iteration, never repeated within a case.
const SERIAL_BASE: u32 = 0xC613_0000;

pub struct InProgram {
    /// ns per iteration over runs: median, 1st and 99th percentile, net of the restore loop.
    pub median: f64,
    pub p1: f64,
    pub p99: f64,
    /// The restore-only loop's median ns per iteration (subtracted).
    pub restore: f64,
}

impl InProgram {
    pub fn json(&self) -> Value {
        json!({ "median": self.median, "p1": self.p1, "p99": self.p99,
                "restore_ns": self.restore, "iterations_per_run": ITERATIONS, "runs": RUNS })
    }
}

/// The packet a case's iterations start from, and the offset of the 4 bytes varied per
/// iteration (new-flow cases: the source address) or 0.
fn packet(case: &Case) -> (Vec<u8>, u32) {
    match &case.traffic {
        Traffic::Fixed { packet, .. } => (packet.clone(), 0),
        Traffic::Established { proto, vip, .. } => {
            (cases::later_packet(*proto, cases::client(0, vip), *vip), 0)
        }
        Traffic::SameSyn { vip } => (
            packets::tcp(cases::client(0, vip), *vip, packets::Tcp::Syn, b""),
            0,
        ),
        Traffic::NewFlows { proto, vip, .. } => {
            // Ethernet 14 + IPv4 source at 12, or the low 32 bits of the IPv6 source (8 + 12).
            let off = if vip.is_ipv4() { 14 + 12 } else { 14 + 8 + 12 };
            (
                cases::first_packet(*proto, cases::client(0, vip), *vip),
                off,
            )
        }
    }
}

pub fn measure(case: &Case, dp: &mut Dataplane, ingress: u32) -> Result<InProgram> {
    let (pkt, vary) = packet(case);
    let mut head = [0u8; 16];
    head.copy_from_slice(&pkt[..16]);
    let mut per_mode = |mode: u32| -> Result<Vec<f64>> {
        let mut samples = Vec::with_capacity(RUNS as usize);
        for r in 0..RUNS {
            dp.set_bench(&BenchConfig {
                iterations: ITERATIONS,
                mode,
                frame_len: pkt.len() as u32,
                vary_offset: vary,
                serial_base: SERIAL_BASE + r * ITERATIONS,
                _pad: 0,
                head,
            })?;
            call(dp.bench_program()?, &pkt, ingress)?;
            let res = dp.take_bench_result()?;
            ensure!(
                res.failed == 0 && res.ops == ITERATIONS as u64,
                "{}: the bench loop ran {} of {ITERATIONS} iterations ({} failed)",
                case.name,
                res.ops,
                res.failed
            );
            samples.push(res.ns as f64 / res.ops as f64);
        }
        Ok(samples)
    };
    let restore = median(&per_mode(BENCH_MODE_RESTORE_ONLY)?);
    let mut net: Vec<f64> = per_mode(BENCH_MODE_BALANCE)?
        .into_iter()
        .map(|ns| ns - restore)
        .collect();
    net.sort_by(f64::total_cmp);
    let pct = |p: f64| net[((net.len() - 1) as f64 * p).round() as usize];
    Ok(InProgram {
        median: median(&net),
        p1: pct(0.01),
        p99: pct(0.99),
        restore,
    })
}
