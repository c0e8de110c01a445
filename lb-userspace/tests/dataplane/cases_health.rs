//! Backend health in the data plane: a flow on a backend that went down is rescheduled on its
//! next packet, a draining backend keeps its flows, a VIP with every backend down fails open
//! or drops as configured, and the flow table records when each flow was last seen (what drains
//! count).
use lb_userspace::maps::MapStore as _;
use std::{
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use anyhow::{Context as _, Result, ensure};
use lb_common::stats::Stat;
use lb_userspace::{
    config::{AllDown, Config, HealthCheckConfig, Protocol::Tcp},
    dataplane::{Dataplane, flow_scan::flow_clock_tick},
    health::{probe::Verdict, spec::InitialState},
    state::{CheckStatus, DrainRequest},
    wire::flow_key,
};
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, Lb, expect_forward, expect_forward_to},
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `configs/fixture.toml` with a TCP check on the first VIP's backends (198.18.1.11-13), in the
/// ring until it answers (`initial_state = "up"`): a sync forgets verdicts of checks no VIP wants,
/// so the verdicts these tests set must be of a wanted check. Every VIP does `all_down` when all
/// its backends are down.
fn load(fx0: u32, all_down: AllDown) -> Result<Lb> {
    let mut cfg = Config::parse(configs::text(configs::FIXTURE))?;
    cfg.vips[0].policy.health_check = Some(HealthCheckConfig {
        kind: Some("tcp".into()),
        initial_state: Some(InitialState::Up),
        ..Default::default()
    });
    for v in &mut cfg.vips {
        v.policy.all_backends_down = all_down;
    }
    Lb::load(fx0, &cfg, Dataplane::load)
}

/// Record a settled health verdict for `backend`'s check, as the control task does for a check
/// task's report, and write the maps.
fn set_health(lb: &mut Lb, backend: IpAddr, verdict: Verdict) -> Result<()> {
    let spec = lb
        .state
        .wanted_checks()
        .into_iter()
        .find(|w| w.backend == backend)
        .context("no VIP checks this backend")?
        .spec;
    let status = CheckStatus::settled(verdict, "test", Instant::now());
    lb.state
        .set_check_status(backend, &spec, status, Instant::now());
    lb.sync()
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial("health/down-backend-flows-are-rescheduled", move || {
            let mut lb = load(fx0, AllDown::FailOpen)?;
            let (c, vip) = (sa("198.18.0.10:43000"), sa("198.18.100.1:80"));
            let first = lb.open_flow(c, vip, Ingress::Fx0)?;
            set_health(&mut lb, first.backend, Verdict::Down)?;
            let now = lb.simulate(Tcp, c, vip)?;
            ensure!(now.backend != first.backend, "the ring still names it");
            // The established flow's next packet goes to the ring's pick, not the dead server.
            let ack = packets::tcp(c, vip, F::Ack, b"more");
            expect_forward_to(&mut lb, &ack, Ingress::Fx0, now.backend, now.hash)
                .context("rescheduled")?;
            ensure!(
                lb.stat(Stat::FlowBackendDown) == 1,
                "backend-down reschedules: {}",
                lb.stat(Stat::FlowBackendDown)
            );
            let st = lb.dp.flow(&flow_key(Tcp, c, vip)?).context("flow entry")?;
            ensure!(
                st.backend_id == lb.backend_id(now.backend),
                "entry not moved"
            );
            // Back up: new flows may use it again; the moved flow stays where it is now.
            set_health(&mut lb, first.backend, Verdict::Up)?;
            expect_forward_to(&mut lb, &ack, Ingress::Fx0, now.backend, now.hash).with_context(
                || {
                    format!(
                        "after recovery (first {}, then {})",
                        first.backend, now.backend
                    )
                },
            )?;
            Ok(())
        }),
        trial("health/disabled-backend-flows-are-rescheduled", move || {
            let mut lb = load(fx0, AllDown::FailOpen)?;
            let (c, vip) = (sa("[2001:db8::10]:43100"), sa("[2001:db8:100::1]:80"));
            let first = lb.open_flow(c, vip, Ingress::Lo)?;
            lb.state.set_disabled(first.backend, true)?;
            lb.sync()?;
            let ack = packets::tcp(c, vip, F::Ack, b"x");
            let b = expect_forward(&mut lb, Tcp, c, vip, &ack, Ingress::Lo)?;
            ensure!(b != first.backend, "still sent to the disabled backend");
            Ok(())
        }),
        trial(
            "health/going-away-and-drain-keep-established-flows",
            move || {
                let mut lb = load(fx0, AllDown::FailOpen)?;
                let vip = sa("198.18.100.1:80");
                let (c1, c2) = (sa("198.18.0.10:43200"), sa("198.18.0.10:43201"));
                let f1 = lb.open_flow(c1, vip, Ingress::Fx0)?;
                // A check saying "going away" drains: no new flows, established ones stay.
                set_health(&mut lb, f1.backend, Verdict::GoingAway)?;
                let ack = packets::tcp(c1, vip, F::Ack, b"x");
                expect_forward_to(&mut lb, &ack, Ingress::Fx0, f1.backend, f1.hash)?;
                for port in 43300..43340u16 {
                    let c = SocketAddr::new(c1.ip(), port);
                    let syn = packets::tcp(c, vip, F::Syn, b"");
                    let b = expect_forward(&mut lb, Tcp, c, vip, &syn, Ingress::Fx0)?;
                    ensure!(b != f1.backend, "new flow to a going-away backend");
                }
                // Same for an operator drain.
                set_health(&mut lb, f1.backend, Verdict::Up)?;
                let f2 = lb.open_flow(c2, vip, Ingress::Fx0)?;
                let key = lb.state.vips[0].key;
                let drain = DrainRequest::Start {
                    timeout: std::time::Duration::from_secs(60),
                };
                lb.state
                    .update_member(&key, f2.backend, None, Some(drain))?;
                lb.sync()?;
                let ack2 = packets::tcp(c2, vip, F::Ack, b"y");
                expect_forward_to(&mut lb, &ack2, Ingress::Fx0, f2.backend, f2.hash)?;
                ensure!(lb.stat(Stat::FlowBackendDown) == 0);
                Ok(())
            },
        ),
        trial("health/all-down-fails-open-by-default", move || {
            let mut lb = load(fx0, AllDown::FailOpen)?;
            let (c, vip) = (sa("198.18.0.10:43400"), sa("198.18.100.1:80"));
            let first = lb.open_flow(c, vip, Ingress::Fx0)?;
            for b in ["198.18.1.11", "198.18.1.12", "198.18.1.13"] {
                set_health(&mut lb, b.parse()?, Verdict::Down)?;
            }
            ensure!(lb.state.vips[0].failing_open, "not failing open");
            // Flows stay; new flows are still forwarded (to the set known last).
            let ack = packets::tcp(c, vip, F::Ack, b"x");
            expect_forward_to(&mut lb, &ack, Ingress::Fx0, first.backend, first.hash)?;
            let c2 = sa("198.18.0.10:43401");
            lb.forward_tcp(c2, vip, F::Syn, Ingress::Fx0)?;
            Ok(())
        }),
        trial("health/all-down-drops-when-configured", move || {
            // Every VIP: a backend that a VIP failing open still sends to keeps its flows (the
            // down flag is per backend), so all VIPs sharing these backends drop.
            let mut lb = load(fx0, AllDown::Drop)?;
            let (c, vip) = (sa("198.18.0.10:43500"), sa("198.18.100.1:80"));
            lb.open_flow(c, vip, Ingress::Fx0)?;
            for b in ["198.18.1.11", "198.18.1.12", "198.18.1.13"] {
                set_health(&mut lb, b.parse()?, Verdict::Down)?;
            }
            for (i, p) in [
                packets::tcp(c, vip, F::Ack, b"x"),
                packets::tcp(sa("198.18.0.10:43501"), vip, F::Syn, b""),
            ]
            .iter()
            .enumerate()
            {
                let (action, _) = lb.run(p, Ingress::Fx0)?;
                ensure!(
                    action == 1,
                    "packet {i}: action {action}, expected XDP_DROP"
                );
            }
            ensure!(lb.stat(Stat::DropNoBackend) == 2);
            Ok(())
        }),
        trial("health/flow-table-records-last-seen", move || {
            let mut lb = load(fx0, AllDown::FailOpen)?;
            let vip = sa("198.18.100.1:80");
            for port in 43600..43610u16 {
                lb.open_flow(
                    SocketAddr::new("198.18.0.10".parse()?, port),
                    vip,
                    Ingress::Fx0,
                )?;
            }
            let now = flow_clock_tick();
            let mut seen = 0;
            lb.dp.scan_flows(&mut |_, v| {
                // Within a second (ticks are ~1 ms) of now.
                if now.wrapping_sub(v.last_seen) < 1000 {
                    seen += 1;
                }
            })?;
            ensure!(seen == 10, "{seen} of 10 flows with a fresh last-seen time");
            Ok(())
        }),
    ]
}
