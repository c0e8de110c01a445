//! Stateful sequences: the flow table keeps established flows on their backend when the ring
//! changes, reschedules flows whose backend is gone, and the counters add up.
use lb_userspace::maps::MapStore as _;
use std::net::SocketAddr;

use anyhow::ensure;
use lb_common::stats::Stat;
use lb_userspace::config::Protocol::Tcp;
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, expect_forward, expect_forward_to, expect_pass_unchanged},
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial(
            "flow/syn-with-another-sequence-number-is-a-new-connection",
            move || {
                let mut lb = configs::load(fx0, configs::FIXTURE)?;
                let (c, vip) = (sa("198.18.0.10:42900"), sa("198.18.100.1:80"));
                let first = lb.open_flow(c, vip, Ingress::Fx0)?;
                lb.weight_zero(vip, first.backend)?;
                // A retransmitted SYN (same number) follows its flow...
                let again = packets::tcp(c, vip, F::Syn, b"");
                expect_forward_to(&mut lb, &again, Ingress::Fx0, first.backend, first.hash)?;
                ensure!(lb.stat(Stat::FlowReopened) == 0);
                // ...a SYN with another number is a new connection whose predecessor ended unseen
                // (e.g. reset by a crashed server's host): scheduled on the ring now.
                let now = lb.simulate(Tcp, c, vip)?;
                let fresh = packets::syn_seq(c, vip, 0x5eed_0001);
                expect_forward_to(&mut lb, &fresh, Ingress::Fx0, now.backend, now.hash)?;
                ensure!(lb.stat(Stat::FlowReopened) == 1);
                let key = lb_userspace::wire::flow_key(Tcp, c, vip)?;
                let st = lb.dp.flow(&key).expect("flow entry");
                ensure!(
                    st.syn_seq == 0x5eed_0001u32.to_be(),
                    "syn_seq {:#x}",
                    st.syn_seq
                );
                ensure!(
                    st.flags & lb_common::flow::FLOW_F_ESTABLISHED == 0,
                    "only a SYN so far"
                );
                let ack = packets::tcp(c, vip, F::Ack, b"");
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, now.backend, now.hash)?;
                let st = lb.dp.flow(&key).expect("flow entry");
                ensure!(
                    st.flags & lb_common::flow::FLOW_F_ESTABLISHED != 0,
                    "the ACK establishes"
                );
                Ok(())
            },
        ),
        trial(
            "flow/established-flow-sticks-when-ring-changes",
            move || {
                let mut lb = configs::load(fx0, configs::FIXTURE)?;
                let (c, vip) = (sa("198.18.0.10:42000"), sa("198.18.100.1:80"));
                let first = lb.open_flow(c, vip, Ingress::Fx0)?;
                lb.weight_zero(vip, first.backend)?;
                let now = lb.simulate(Tcp, c, vip)?;
                ensure!(
                    now.backend != first.backend,
                    "ring did not change for this flow"
                );
                // ...but this established flow's next packet still reaches it.
                let ack = packets::tcp(c, vip, F::Ack, b"more");
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, first.backend, first.hash)?;
                ensure!(lb.stat(Stat::FlowHit) == 1 && lb.stat(Stat::FlowMiss) == 1);
                // A new flow follows the new ring.
                let c2 = sa("198.18.0.10:42001");
                let b2 = lb.forward_tcp(c2, vip, F::Syn, Ingress::Fx0)?;
                ensure!(b2 != first.backend, "new flow went to the weight-0 backend");
                Ok(())
            },
        ),
        trial("flow/removed-backend-flows-are-rescheduled", move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:42100"), sa("198.18.100.1:80"));
            let first = lb.simulate(Tcp, c, vip)?;
            lb.forward_tcp(c, vip, F::Syn, Ingress::Fx0)?;
            // Remove the backend from every VIP that has it: its slot is freed, so the flow's
            // entry is stale.
            let keys: Vec<_> = lb.state.vips.iter().map(|v| v.key).collect();
            for key in keys {
                let _ = lb.state.remove_backend(&key, first.backend);
            }
            lb.sync()?;
            let ack = packets::tcp(c, vip, F::Ack, b"more");
            let b = expect_forward(&mut lb, Tcp, c, vip, &ack, Ingress::Fx0)?;
            ensure!(b != first.backend);
            ensure!(
                lb.stat(Stat::FlowStale) == 1,
                "stale = {}",
                lb.stat(Stat::FlowStale)
            );
            // The flow table now remembers the new backend.
            let key = lb_userspace::wire::flow_key(Tcp, c, vip)?;
            let st = lb.dp.flow(&key).expect("flow entry");
            ensure!(st.backend_id == lb.backend_id(b));
            Ok(())
        }),
        trial(
            "flow/syn-then-ack-same-backend-and-table-entry",
            move || {
                let mut lb = configs::load(fx0, configs::FIXTURE)?;
                let (c, vip) = (sa("[2001:db8::10]:42200"), sa("[2001:db8:100::1]:80"));
                let b1 = lb.forward_tcp(c, vip, F::Syn, Ingress::Lo)?;
                let b2 = lb.forward_tcp(c, vip, F::Ack, Ingress::Lo)?;
                ensure!(b1 == b2);
                let key = lb_userspace::wire::flow_key(Tcp, c, vip)?;
                let st = lb.dp.flow(&key).expect("flow entry");
                ensure!(st.backend_id == lb.backend_id(b1));
                ensure!(
                    st.hash == lb.simulate(Tcp, c, vip)?.hash,
                    "stored hash differs"
                );
                Ok(())
            },
        ),
        trial("stats/vip-backend-and-outcome-counters", move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:42300"), sa("198.18.100.1:80"));
            let pkts = [
                packets::tcp(c, vip, F::Syn, b""),
                packets::tcp(c, vip, F::Ack, b"hello"),
                packets::tcp(c, vip, F::Fin, b""),
            ];
            let mut backend = None;
            for p in &pkts {
                backend = Some(expect_forward(&mut lb, Tcp, c, vip, p, Ingress::Fx0)?);
            }
            expect_pass_unchanged(
                &mut lb,
                &packets::tcp(c, sa("198.18.100.77:80"), F::Syn, b""),
            )?;
            let bytes: u64 = pkts.iter().map(|p| p.len() as u64).sum();
            let v = lb.dp.vip_stats(0)?;
            ensure!(
                v.packets == 3 && v.bytes == bytes && v.new_flows == 1,
                "vip {v:?}, want 3/{bytes}"
            );
            let b = lb.dp.backend_stats(lb.backend_id(backend.unwrap()))?;
            ensure!(
                b.packets == 3 && b.bytes == bytes && b.new_flows == 1,
                "backend {b:?}"
            );
            ensure!(lb.stat(Stat::Tx) == 3);
            ensure!(lb.stat(Stat::FlowMiss) == 1 && lb.stat(Stat::FlowHit) == 2);
            ensure!(lb.stat(Stat::PassNoVip) == 1);
            Ok(())
        }),
    ]
}
