//! What the data plane counts for passive outlier detection, per backend: an attempt per new
//! flow opened by a bare SYN, the client's first ACK as the backend's answer, the first
//! retransmission of the opening SYN as a failed attempt (once per attempt), and nothing for an
//! attempt the client abandons. And what an ejection does to the flow table: an attempt its
//! backend never answered is rescheduled on its next packet, an established flow stays.
use std::{net::SocketAddr, time::Instant};

use anyhow::{Context as _, Result, ensure};
use lb_common::stats::{Handshakes, Stat};
use lb_userspace::{
    config::outlier::OutlierConfig,
    maps::MapStore as _,
    testkit::{
        Lb,
        lb::{Ingress, expect_forward_to},
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::{configs, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const VIP: &str = "198.18.100.1:80";

/// The counters of the backend `c`'s flow went to.
fn counters(lb: &Lb, backend: std::net::IpAddr) -> Result<Handshakes> {
    lb.dp.handshakes(lb.backend_id(backend))
}

fn want(attempts: u64, answered: u64, retransmitted: u64) -> Handshakes {
    Handshakes {
        attempts,
        answered,
        retransmitted,
    }
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial("handshake/attempt-then-answer", move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:43100"), sa(VIP));
            let pick = lb.open_flow(c, vip, Ingress::Fx0)?;
            ensure!(
                counters(&lb, pick.backend)? == want(1, 0, 0),
                "after the SYN"
            );
            for payload in [&b""[..], b"GET / HTTP/1.1\r\n\r\n", b"more"] {
                let ack = packets::tcp(c, vip, F::Ack, payload);
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, pick.backend, pick.hash)?;
            }
            ensure!(
                counters(&lb, pick.backend)? == want(1, 1, 0),
                "one answer for the first ACK only: {:?}",
                counters(&lb, pick.backend)?
            );
            Ok(())
        }),
        trial("handshake/retransmission-counted-once", move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:43101"), sa(VIP));
            let pick = lb.open_flow(c, vip, Ingress::Fx0)?;
            let syn = packets::tcp(c, vip, F::Syn, b"");
            for _ in 0..3 {
                expect_forward_to(&mut lb, &syn, Ingress::Fx0, pick.backend, pick.hash)?;
            }
            ensure!(
                counters(&lb, pick.backend)? == want(1, 0, 1),
                "{:?}",
                counters(&lb, pick.backend)?
            );
            // Answered at last: counted as answered too (both happened).
            let ack = packets::tcp(c, vip, F::Ack, b"");
            expect_forward_to(&mut lb, &ack, Ingress::Fx0, pick.backend, pick.hash)?;
            ensure!(counters(&lb, pick.backend)? == want(1, 1, 1));
            Ok(())
        }),
        trial("handshake/abandoned-attempt-is-no-signal", move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:43102"), sa(VIP));
            let pick = lb.open_flow(c, vip, Ingress::Fx0)?;
            // The client gives up with a RST before any answer: neither answered nor failed.
            let rst = packets::tcp(c, vip, F::Rst, b"");
            expect_forward_to(&mut lb, &rst, Ingress::Fx0, pick.backend, pick.hash)?;
            ensure!(counters(&lb, pick.backend)? == want(1, 0, 0));
            // A new SYN on the closed tuple is a new attempt, not a retransmission.
            let syn = packets::tcp(c, vip, F::Syn, b"");
            let again = lb.simulate(lb_userspace::config::Protocol::Tcp, c, vip)?;
            expect_forward_to(&mut lb, &syn, Ingress::Fx0, again.backend, again.hash)?;
            let total = counters(&lb, pick.backend)?;
            ensure!(total.retransmitted == 0 && total.answered == 0, "{total:?}");
            Ok(())
        }),
        trial(
            "handshake/ejected-backend-loses-its-unanswered-attempts-only",
            move || {
                let mut lb = watched(fx0)?;
                let vip = sa(VIP);
                // Two flows to one backend: one answered (established), one only a SYN so far.
                let (est, att) = same_backend_clients(&mut lb, vip)?;
                let first = lb.open_flow(est, vip, Ingress::Fx0)?;
                let ack = packets::tcp(est, vip, F::Ack, b"");
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, first.backend, first.hash)?;
                lb.open_flow(att, vip, Ingress::Fx0)?;
                // The backend is ejected.
                let id = lb.backend_id(first.backend);
                lb.state
                    .eject(id, "test".into(), Instant::now())
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                lb.sync()?;
                // The established flow stays on it.
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, first.backend, first.hash)
                    .context("the established flow")?;
                // The attempt's retransmitted SYN goes to the ring's new choice.
                let now = lb.simulate(lb_userspace::config::Protocol::Tcp, att, vip)?;
                ensure!(now.backend != first.backend, "the ring still names it");
                let syn = packets::tcp(att, vip, F::Syn, b"");
                expect_forward_to(&mut lb, &syn, Ingress::Fx0, now.backend, now.hash)
                    .context("the unanswered attempt")?;
                ensure!(
                    lb.stat(Stat::FlowEjected) == 1,
                    "{}",
                    lb.stat(Stat::FlowEjected)
                );
                Ok(())
            },
        ),
    ]
}

/// The fixture configuration with outlier detection on the TCP VIP (port 80), uncapped.
fn watched(fx0: u32) -> Result<Lb> {
    let mut lb = configs::load(fx0, configs::FIXTURE)?;
    let key = lb
        .state
        .vips
        .iter()
        .find(|v| v.spec.port == 80 && v.spec.address == sa(VIP).ip())
        .context("the fixture VIP")?
        .key;
    let mut spec = lb.state.vip(&key)?.spec.clone();
    // Every fixture backend also serves a one-backend VIP, which the default cap (50%) would
    // keep from ever losing it.
    spec.policy.outlier_detection = Some(OutlierConfig {
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    });
    lb.state.update_vip(&spec)?;
    lb.sync()?;
    Ok(lb)
}

/// Two client addresses whose flows to `vip` the ring sends to one backend.
fn same_backend_clients(lb: &mut Lb, vip: SocketAddr) -> Result<(SocketAddr, SocketAddr)> {
    let tcp = lb_userspace::config::Protocol::Tcp;
    let first = sa("198.18.0.10:43200");
    let target = lb.simulate(tcp, first, vip)?.backend;
    for port in 43201..43400 {
        let c = SocketAddr::new(first.ip(), port);
        if lb.simulate(tcp, c, vip)?.backend == target {
            return Ok((first, c));
        }
    }
    anyhow::bail!("no second client on the same backend")
}
