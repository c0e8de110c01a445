//! ICMP: echo requests to VIP addresses are answered by the load balancer; ICMP errors about a
//! VIP flow (fragmentation needed, packet too big) go to the backend that owns the flow, so path
//! MTU discovery works through DSR; TCP FIN/RST and SYN reuse in the flow table.
use lb_userspace::maps::MapStore as _;
use std::net::{IpAddr, SocketAddr};

use anyhow::ensure;
use lb_common::stats::Stat;
use lb_userspace::{
    config::Protocol::Tcp,
    testkit::{
        lb::{Ingress, XDP_TX, expect_forward, expect_forward_to},
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::{
    configs,
    fixture::{self, Fixture, Output},
    trial,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn fixtures() -> Vec<Fixture> {
    let mut v = Vec::new();
    for (name, client, vip) in [
        (
            "icmp/echo-to-a-vip-address-is-answered",
            "198.18.0.10",
            "198.18.100.1",
        ),
        (
            "icmp/echov6-to-a-vip-address-is-answered",
            "2001:db8::10",
            "2001:db8:100::1",
        ),
    ] {
        let (client, vip) = (ip(client), ip(vip));
        v.push(Fixture {
            action: XDP_TX,
            output: Output::Bytes(packets::icmp_echo_reply(client, vip)),
            ..Fixture::pass(name, Stat::TxEchoReply, packets::icmp_echo(client, vip))
                .from(Ingress::Fx0)
        });
    }
    // The program answers only echo requests without IPv4 options.
    let plain = packets::icmp_echo(ip("198.18.0.10"), ip("198.18.100.1"));
    let mut p = plain[..34].to_vec();
    p.extend_from_slice(&[1, 1, 1, 0]);
    p.extend_from_slice(&plain[34..]);
    p[14] = 0x46;
    let tot = u16::from_be_bytes([p[16], p[17]]) + 4;
    p[16..18].copy_from_slice(&tot.to_be_bytes());
    packets::fix_ipv4_checksum(&mut p);
    let name = "icmp/echo-with-ipv4-options-goes-to-the-kernel";
    v.push(Fixture::pass(name, Stat::PassNoVip, p).from(Ingress::Fx0));
    let err = packets::icmp_too_big(
        ip("198.18.0.254"),
        sa("198.18.100.9:80"),
        sa("198.18.0.10:1"),
    );
    let name = "icmp/error-about-a-non-vip-flow-goes-to-the-kernel";
    v.push(Fixture::pass(name, Stat::PassNoVip, err).from(Ingress::Fx0));
    v
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    let mut v = fixture::trials(fx0, fixtures());
    for (name, client, vip, router) in [
        (
            "icmp/fragmentation-needed-follows-its-flow",
            "198.18.0.10:40000",
            "198.18.100.1:80",
            "198.18.0.254",
        ),
        (
            "icmp/packet-too-big-follows-its-flow",
            "[2001:db8::10]:40000",
            "[2001:db8:100::1]:80",
            "2001:db8::fe",
        ),
    ] {
        v.push(trial(name, move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa(client), sa(vip));
            // The flow exists; then its backend leaves the ring, so only the flow table can
            // send the error to the right backend.
            let first = lb.open_flow(c, vip, Ingress::Fx0)?;
            lb.weight_zero(vip, first.backend)?;
            let err = packets::icmp_too_big(ip(router), vip, c);
            expect_forward_to(&mut lb, &err, Ingress::Fx0, first.backend, first.hash)?;
            ensure!(lb.stat(Stat::IcmpErrorToBackend) == 1);
            Ok(())
        }));
    }
    v.push(trial(
        "icmp/error-without-a-flow-uses-the-ring-and-creates-no-flow",
        move || {
            let mut lb = configs::load(fx0, configs::FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:40001"), sa("198.18.100.1:80"));
            let err = packets::icmp_too_big(ip("198.18.0.254"), vip, c);
            expect_forward(&mut lb, Tcp, c, vip, &err, Ingress::Fx0)?;
            let key = lb_userspace::wire::flow_key(Tcp, c, vip)?;
            ensure!(lb.dp.flow(&key).is_none(), "an ICMP error created a flow");
            Ok(())
        },
    ));
    v.push(trial("flow/syn-after-fin-is-a-new-connection", move || {
        let mut lb = configs::load(fx0, configs::FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:43000"), sa("198.18.100.1:80"));
        let first = lb.open_flow(c, vip, Ingress::Fx0)?;
        lb.weight_zero(vip, first.backend)?;
        // A retransmitted SYN and the FIN still follow the flow...
        let syn = packets::tcp(c, vip, F::Syn, b"");
        expect_forward_to(&mut lb, &syn, Ingress::Fx0, first.backend, first.hash)?;
        let fin = packets::tcp(c, vip, F::Fin, b"");
        expect_forward_to(&mut lb, &fin, Ingress::Fx0, first.backend, first.hash)?;
        // ...but a SYN after the FIN opens a new connection, scheduled on the current ring.
        let again = expect_forward(&mut lb, Tcp, c, vip, &syn, Ingress::Fx0)?;
        ensure!(
            again != first.backend,
            "the new connection followed the closed one"
        );
        ensure!(lb.stat(Stat::FlowReopened) == 1);
        Ok(())
    }));
    v.push(trial("flow/rst-closes-too", move || {
        let mut lb = configs::load(fx0, configs::FIXTURE)?;
        let (c, vip) = (sa("[2001:db8::10]:43001"), sa("[2001:db8:100::1]:80"));
        let first = lb.open_flow(c, vip, Ingress::Lo)?;
        lb.weight_zero(vip, first.backend)?;
        let rst = packets::tcp(c, vip, F::Rst, b"");
        expect_forward_to(&mut lb, &rst, Ingress::Lo, first.backend, first.hash)?;
        let b = lb.forward_tcp(c, vip, F::Syn, Ingress::Lo)?;
        ensure!(b != first.backend);
        Ok(())
    }));
    v
}
