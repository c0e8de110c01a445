//! The backends' decap program: strips our outer header for configured VIPs only.
use std::net::{IpAddr, SocketAddr};

use anyhow::{Result, ensure};
use lb_userspace::{
    config::Protocol::Tcp,
    testkit::{
        decap::Decap,
        lb::{Ingress, XDP_DROP, XDP_PASS, mac_of, same_bytes},
        netns::{CLIENT_MAC, LB_MAC},
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::{configs, trial};

const VIPS: [&str; 2] = ["198.18.100.1", "2001:db8:100::1"];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn decap() -> Result<Decap> {
    Decap::new(&VIPS.map(ip))
}

/// `inner` in an IPIP header from 198.18.200.7 to backend 198.18.1.11.
fn ipip(inner: &[u8]) -> Vec<u8> {
    packets::encapsulated(
        inner,
        LB_MAC,
        CLIENT_MAC,
        ip("198.18.200.7"),
        ip("198.18.1.11"),
        7,
    )
}

/// `inner` as the backend's stack should see it: the encapsulated frame's MACs, inner ethertype.
fn decapsulated(inner: &[u8], eth_src: [u8; 6], eth_dst: [u8; 6]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&eth_dst);
    out.extend_from_slice(&eth_src);
    out.extend_from_slice(&inner[12..]);
    out
}

fn encap_decap(client: &str, vip: &str, outer_src: &str, backend: &str) -> Result<()> {
    let mut d = decap()?;
    let inner = packets::tcp(sa(client), sa(vip), F::Syn, b"");
    let input = packets::encapsulated(
        &inner,
        LB_MAC,
        [2, 0, 0, 0, 1, 11],
        ip(outer_src),
        ip(backend),
        7,
    );
    let (action, out) = d.run(&input)?;
    ensure!(action == XDP_PASS, "action {action}");
    same_bytes(&out, &decapsulated(&inner, LB_MAC, [2, 0, 0, 0, 1, 11]))
}

pub fn trials() -> Vec<Trial> {
    vec![
        trial("decap/ipip", || {
            encap_decap(
                "198.18.0.10:40000",
                "198.18.100.1:80",
                "198.18.200.7",
                "198.18.1.11",
            )
        }),
        trial("decap/ip6ip6", || {
            encap_decap(
                "[2001:db8::10]:40000",
                "[2001:db8:100::1]:80",
                "2001:db8:200::7",
                "2001:db8:1::11",
            )
        }),
        trial("decap/ipv4-in-ipv6", || {
            encap_decap(
                "198.18.0.10:40000",
                "198.18.100.1:80",
                "2001:db8:200::7",
                "2001:db8:1::11",
            )
        }),
        trial("decap/ipv6-in-ipv4", || {
            encap_decap(
                "[2001:db8::10]:40000",
                "[2001:db8:100::1]:80",
                "198.18.200.7",
                "198.18.1.11",
            )
        }),
        trial("decap/inner-destination-not-ours-passes-untouched", || {
            let mut d = decap()?;
            let inner = packets::tcp(sa("198.18.0.10:1"), sa("198.18.100.99:80"), F::Syn, b"");
            let input = ipip(&inner);
            let (action, out) = d.run(&input)?;
            ensure!(action == XDP_PASS);
            same_bytes(&out, &input)
        }),
        trial("decap/plain-packet-passes-untouched", || {
            let mut d = decap()?;
            let input = packets::tcp(sa("198.18.0.10:1"), sa("198.18.100.1:80"), F::Syn, b"");
            let (action, out) = d.run(&input)?;
            ensure!(action == XDP_PASS);
            same_bytes(&out, &input)
        }),
        trial("decap/truncated-inner-header-drops", || {
            let mut d = decap()?;
            let inner = packets::tcp(sa("198.18.0.10:1"), sa("198.18.100.1:80"), F::Syn, b"");
            let input = ipip(&inner);
            let (action, _) = d.run(&input[..14 + 20 + 12])?;
            ensure!(action == XDP_DROP, "action {action}");
            Ok(())
        }),
        trial("decap/fragmented-outer-packet-goes-to-kernel", || {
            let mut d = decap()?;
            let inner = packets::tcp(sa("198.18.0.10:1"), sa("198.18.100.1:80"), F::Syn, b"");
            let mut input = ipip(&inner);
            input[20] |= 0x20;
            packets::fix_ipv4_checksum(&mut input);
            let (action, out) = d.run(&input)?;
            ensure!(action == XDP_PASS);
            same_bytes(&out, &input)
        }),
        trial("decap/round-trip-through-the-load-balancer", move || {
            // What the LB emits, the backend's decap turns back into the client's packet.
            let mut lb = configs::load(0, configs::FIXTURE)?;
            let mut d = decap()?;
            let (c, vip) = (sa("198.18.0.10:43000"), sa("198.18.100.1:80"));
            let original = packets::tcp(c, vip, F::Ack, b"payload");
            let (_, encapsulated) = lb.run(&original, Ingress::Lo)?;
            let backend = lb.simulate(Tcp, c, vip)?.backend;
            let (action, out) = d.run(&encapsulated)?;
            ensure!(action == XDP_PASS);
            same_bytes(&out, &decapsulated(&original, LB_MAC, mac_of(backend)))
        }),
    ]
}
