//! The new-flow guard: above a VIP's new-flow limit, new flows are still forwarded by the ring
//! but not put in the flow table, so a flood of new tuples cannot evict established flows.
use lb_userspace::maps::MapStore as _;
use std::net::SocketAddr;

use anyhow::{Result, bail, ensure};
use lb_common::stats::Stat;
use lb_userspace::{config::Protocol::Tcp, wire::flow_key};
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, expect_forward},
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

/// Runs `f` on a thread of its own pinned to one CPU: the buckets are per CPU, so every packet of
/// the test must meet the same one. A fresh thread, so the pinning ends with it (the harness
/// reuses its worker threads for later trials), on a CPU this process may use.
fn on_one_cpu<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            lb_userspace::testkit::pin_to_current_cpu()?;
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("the pinned thread panicked"))
    })
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![trial(
        "flood/new-flows-above-the-limit-are-forwarded-not-remembered",
        move || {
            on_one_cpu(|| {
                let mut lb = configs::load(fx0, configs::FLOOD)?;
                let vip: SocketAddr = "198.18.100.1:80".parse()?;
                let clients: Vec<SocketAddr> = (0..4)
                    .map(|i| format!("198.18.0.10:{}", 44000 + i).parse().unwrap())
                    .collect();
                // One new flow per second fits: the first is remembered, the next ones within the same
                // second are forwarded all the same but not remembered.
                for c in &clients {
                    expect_forward(
                        &mut lb,
                        Tcp,
                        *c,
                        vip,
                        &packets::tcp(*c, vip, F::Syn, b""),
                        Ingress::Fx0,
                    )?;
                }
                ensure!(
                    lb.dp.flow(&flow_key(Tcp, clients[0], vip)?).is_some(),
                    "the first flow was not remembered"
                );
                for c in &clients[1..] {
                    ensure!(
                        lb.dp.flow(&flow_key(Tcp, *c, vip)?).is_none(),
                        "a flow above the limit was remembered"
                    );
                }
                ensure!(
                    lb.stat(Stat::FloodNotInserted) == 3,
                    "skipped {}",
                    lb.stat(Stat::FloodNotInserted)
                );
                // The remembered flow is untouched by the flood.
                let c = clients[0];
                expect_forward(
                    &mut lb,
                    Tcp,
                    c,
                    vip,
                    &packets::tcp(c, vip, F::Ack, b"x"),
                    Ingress::Fx0,
                )?;
                ensure!(lb.stat(Stat::FlowHit) == 1);
                Ok(())
            })
        },
    )]
}
