//! Packets to VIPs: each is encapsulated toward the backend the ring picks, for every pairing of
//! VIP family and backend family, every TCP flag, TCP and UDP, out of the ingress interface (TX)
//! or another one (REDIRECT); and the packets whose details must survive encapsulation (IPv4
//! options, IPv6 extension headers, Ethernet padding, a zero UDP checksum, TTL 1, DSCP).
use std::net::SocketAddr;

use lb_userspace::{
    config::Protocol::{Tcp, Udp},
    testkit::{
        lb::{Ingress, expect_forward_to},
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::{
    configs,
    fixture::{self, Backend, Fixture},
    trial,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const INGRESSES: [(&str, Ingress); 2] = [("tx", Ingress::Fx0), ("redirect", Ingress::Lo)];

pub fn fixtures() -> Vec<Fixture> {
    let mut v = Vec::new();
    // TCP: VIP family x backend family x flag x ingress.
    let vips = [
        (
            "v4-to-v4",
            "198.18.0.10:41000",
            "198.18.100.1:80",
            Backend::V4,
        ),
        (
            "v6-to-v6",
            "[2001:db8::10]:41000",
            "[2001:db8:100::1]:80",
            Backend::V6,
        ),
        (
            "v4-to-v6",
            "198.18.0.10:41000",
            "198.18.100.2:80",
            Backend::V6,
        ),
        (
            "v6-to-v4",
            "[2001:db8::10]:41000",
            "[2001:db8:100::2]:80",
            Backend::V4,
        ),
    ];
    let flags = [
        ("syn", F::Syn),
        ("ack", F::Ack),
        ("fin", F::Fin),
        ("rst", F::Rst),
    ];
    for (vname, client, vip, family) in vips {
        for (fname, f) in flags {
            for (iname, ingress) in INGRESSES {
                let flow = (sa(client), sa(vip));
                let payload: &[u8] = if matches!(f, F::Ack) { b"data" } else { b"" };
                let p = packets::tcp(flow.0, flow.1, f, payload);
                let name = format!("forward/tcp-{vname}-{fname}-{iname}");
                v.push(Fixture::forward(name, Tcp, flow, p, ingress).backend(family));
            }
        }
    }
    // UDP: datagrams of several sizes, and a small one from either side.
    for (name, client, vip) in [
        ("v4", "198.18.0.10:41000", "198.18.100.1:53"),
        ("v6", "[2001:db8::10]:41000", "[2001:db8:100::1]:53"),
    ] {
        let flow = (sa(client), sa(vip));
        for size in [0usize, 1, 512, 1400] {
            let p = packets::udp(flow.0, flow.1, &vec![0xA5; size]);
            let name = format!("forward/udp-{name}-{size}-byte-payload");
            v.push(Fixture::forward(name, Udp, flow, p, Ingress::Fx0));
        }
    }
    for (iname, ingress) in INGRESSES {
        for (name, client, vip) in [
            ("udp4", "198.18.0.10:5353", "198.18.100.1:53"),
            ("udp6", "[2001:db8::10]:5353", "[2001:db8:100::1]:53"),
        ] {
            let flow = (sa(client), sa(vip));
            let p = packets::udp(flow.0, flow.1, b"query");
            v.push(Fixture::forward(
                format!("forward/{name}-{iname}"),
                Udp,
                flow,
                p,
                ingress,
            ));
        }
    }

    // Packets whose details must survive encapsulation, from fx0.
    let mut fx0 = |name: &str, proto, flow, p| {
        v.push(Fixture::forward(name, proto, flow, p, Ingress::Fx0));
    };
    let tcp4 = |port: u16| {
        (
            SocketAddr::new([198, 18, 0, 10].into(), port),
            sa("198.18.100.1:80"),
        )
    };
    // A SYN of the flow with its IPv4 header edited (checksum fixed after).
    let syn4 = |flow: (SocketAddr, SocketAddr), edit: &dyn Fn(&mut Vec<u8>)| {
        let mut p = packets::tcp(flow.0, flow.1, F::Syn, b"");
        edit(&mut p);
        packets::fix_ipv4_checksum(&mut p);
        p
    };
    let flow = tcp4(40001);
    let p = packets::tcp(flow.0, flow.1, F::Ack, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    fx0("forward/tcp4-ack-with-payload", Tcp, flow, p);
    // 8 bytes of IPv4 options: two NOPs, then End of Options padding.
    let flow = tcp4(40006);
    let p = syn4(flow, &|p| {
        p.splice(34..34, [1, 1, 0, 0, 0, 0, 0, 0]);
        p[14] = 0x47; // ihl = 7 words
        let tot = u16::from_be_bytes([p[16], p[17]]) + 8;
        p[16..18].copy_from_slice(&tot.to_be_bytes());
    });
    fx0("forward/ipv4-with-options", Tcp, flow, p);
    // A 46-byte IPv4/UDP packet padded to the 60-byte Ethernet minimum.
    let flow = (sa("198.18.0.10:40007"), sa("198.18.100.1:53"));
    let mut p = packets::udp(flow.0, flow.1, b"q");
    p.resize(60, 0);
    fx0(
        "forward/ethernet-padding-kept-outside-ip-length",
        Udp,
        flow,
        p,
    );
    let flow = (sa("198.18.0.10:5354"), sa("198.18.100.1:53"));
    let mut p = packets::udp(flow.0, flow.1, b"no checksum");
    p[40..42].fill(0);
    fx0("forward/udp4-zero-checksum", Udp, flow, p);
    // DSR keeps the client's packet intact; the outer header has its own TTL.
    let flow = tcp4(40008);
    fx0(
        "forward/ttl-1-is-not-a-router-hop",
        Tcp,
        flow,
        syn4(flow, &|p| p[22] = 1),
    );
    let flow = tcp4(40009);
    let p = syn4(flow, &|p| p[15] = 0xB8); // EF
    fx0("forward/dscp-copied-to-outer-header", Tcp, flow, p);
    for n in [1usize, 2, 4] {
        let flow = (sa("[2001:db8::10]:40010"), sa("[2001:db8:100::1]:80"));
        let p = packets::with_ipv6_ext_headers(&packets::tcp(flow.0, flow.1, F::Syn, b""), n);
        fx0(
            &format!("forward/ipv6-with-{n}-extension-headers"),
            Tcp,
            flow,
            p,
        );
    }
    v
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    let mut v = fixture::trials(fx0, fixtures());
    v.push(trial("forward/outer-source-varies-per-flow", move || {
        let mut lb = configs::load(fx0, configs::FIXTURE)?;
        let vip = sa("198.18.100.1:80");
        let mut sources = std::collections::HashSet::new();
        for port in 41000..41032u16 {
            let c = SocketAddr::new("198.18.0.10".parse()?, port);
            let p = packets::tcp(c, vip, F::Syn, b"");
            let pick = lb.simulate(Tcp, c, vip)?;
            expect_forward_to(&mut lb, &p, Ingress::Fx0, pick.backend, pick.hash)?;
            sources.insert(lb.outer_src(pick.backend, pick.hash));
        }
        anyhow::ensure!(sources.len() > 16, "only {} outer sources", sources.len());
        Ok(())
    }));
    v
}
