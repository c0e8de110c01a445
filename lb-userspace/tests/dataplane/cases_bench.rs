//! The bench-only entry point runs the production packet function: N iterations in one program
//! run give the same verdict and output bytes as one run of `sheave_lb`, and every iteration
//! counts (flow-table hits, or new flows when the source varies). The flow-table floor does the
//! lookup and insert `sheave_lb` does, on the same map. Only with the `bench` feature: the
//! programs are in the bench object, which [`Dataplane::load_bench`] loads.
use lb_userspace::maps::MapStore as _;
use std::net::SocketAddr;

use anyhow::{Result, ensure};
use lb_common::{
    bench::{BENCH_MODE_BALANCE, BENCH_MODE_RESTORE_ONLY, BenchConfig},
    stats::Stat,
};
use lb_userspace::{config::Config, dataplane::Dataplane};
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, Lb, run_program, same_bytes},
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The fixture configuration's load balancer, from the bench object.
fn bench_lb(fx0: u32) -> Result<Lb> {
    Lb::load(
        fx0,
        &Config::parse(configs::text(configs::FIXTURE))?,
        Dataplane::load_bench,
    )
}

fn config(frame: &[u8], iterations: u32, mode: u32, vary_offset: u32) -> BenchConfig {
    let mut head = [0u8; 16];
    head.copy_from_slice(&frame[..16]);
    BenchConfig {
        iterations,
        mode,
        frame_len: frame.len() as u32,
        vary_offset,
        serial_base: 1,
        _pad: 0,
        head,
    }
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial(
            "bench/in-program-loop-matches-one-run",
            move || -> Result<()> {
                let mut lb = bench_lb(fx0)?;
                let (c, vip) = (sa("198.18.0.10:44000"), sa("198.18.100.1:80"));
                lb.open_flow(c, vip, Ingress::Fx0)?;
                let ack = packets::tcp(c, vip, F::Ack, b"bench");
                let (action, want) = lb.run(&ack, Ingress::Fx0)?;
                let hits = lb.stat(Stat::FlowHit);
                lb.dp.set_bench(&config(&ack, 32, BENCH_MODE_BALANCE, 0))?;
                let (got_action, got) =
                    run_program(lb.dp.bench_program()?, &ack, Ingress::Fx0, fx0)?;
                ensure!(
                    got_action == action,
                    "action {got_action}, one run gave {action}"
                );
                same_bytes(&got, &want)?;
                let r = lb.dp.take_bench_result()?;
                ensure!(r.ops == 32 && r.failed == 0, "{r:?}");
                ensure!(
                    lb.stat(Stat::FlowHit) == hits + 32,
                    "every iteration is a hit"
                );
                // Restore-only: the packet comes back as given.
                lb.dp
                    .set_bench(&config(&ack, 8, BENCH_MODE_RESTORE_ONLY, 0))?;
                let (_, same) = run_program(lb.dp.bench_program()?, &ack, Ingress::Fx0, fx0)?;
                same_bytes(&same, &ack)?;
                Ok(())
            },
        ),
        trial(
            "bench/varying-source-makes-new-flows",
            move || -> Result<()> {
                // The flow table is an LRU without a common list: each possible CPU gets an even
                // share of its entries, and all 64 inserts land on the one this run is on. Room
                // for twice that on every CPU, however many the host may have.
                // (aya 0.14's nr_cpus counts the possible CPUs, not the online ones.)
                let cpus = aya::util::nr_cpus()
                    .map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?
                    as u32;
                let mut cfg = Config::parse(configs::text(configs::FIXTURE))?;
                let size = &mut cfg.dataplane.flow_table_size;
                *size = (*size).max(2 * 64 * cpus);
                let mut lb = Lb::load(fx0, &cfg, Dataplane::load_bench)?;
                let (c, vip) = (sa("198.18.0.10:44100"), sa("198.18.100.1:80"));
                let syn = packets::tcp(c, vip, F::Syn, b"");
                let misses = lb.stat(Stat::FlowMiss);
                // 14 (Ethernet) + 12: the IPv4 source address.
                lb.dp.set_bench(&config(&syn, 64, BENCH_MODE_BALANCE, 26))?;
                let (action, _) = run_program(lb.dp.bench_program()?, &syn, Ingress::Fx0, fx0)?;
                ensure!(action == 3, "XDP_TX expected, got {action}");
                ensure!(
                    lb.stat(Stat::FlowMiss) == misses + 64,
                    "each iteration a new flow"
                );
                let mut flows = 0;
                lb.dp.scan_flows(&mut |_, _| flows += 1)?;
                ensure!(flows == 64, "{flows} flows in the table");
                Ok(())
            },
        ),
        trial(
            "bench/floor-looks-up-and-inserts-like-sheave-lb",
            move || -> Result<()> {
                let mut lb = bench_lb(fx0)?;
                let (c, vip) = (sa("198.18.0.10:44200"), sa("198.18.100.1:80"));
                let syn = packets::tcp(c, vip, F::Syn, b"");
                let (misses, hits) = (lb.stat(Stat::FlowMiss), lb.stat(Stat::FlowHit));
                let (action, _) = run_program(lb.dp.floor_program()?, &syn, Ingress::Fx0, fx0)?;
                ensure!(action == 3, "XDP_TX expected, got {action}");
                ensure!(
                    lb.stat(Stat::FlowMiss) == misses + 1,
                    "the first call misses"
                );
                let mut flows = 0;
                lb.dp.scan_flows(&mut |_, _| flows += 1)?;
                ensure!(flows == 1, "{flows} flows in the table");
                // The very entry sheave_lb would find: its next packet of the flow is a hit.
                let ack = packets::tcp(c, vip, F::Ack, b"x");
                run_program(lb.dp.floor_program()?, &ack, Ingress::Fx0, fx0)?;
                ensure!(lb.stat(Stat::FlowHit) == hits + 1, "the second call hits");
                let hits = lb.stat(Stat::FlowHit);
                lb.run(&ack, Ingress::Fx0)?;
                ensure!(
                    lb.stat(Stat::FlowHit) == hits + 1,
                    "sheave_lb hits the floor's entry"
                );
                // Not a VIP packet's business: anything that does not parse passes untouched.
                let arp = vec![0u8; 42];
                let (action, out) = run_program(lb.dp.floor_program()?, &arp, Ingress::Fx0, fx0)?;
                ensure!(action == 2, "XDP_PASS expected, got {action}");
                same_bytes(&out, &arp)?;
                Ok(())
            },
        ),
    ]
}
