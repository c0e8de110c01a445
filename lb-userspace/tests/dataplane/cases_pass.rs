//! What the program must not forward: non-VIP traffic and non-IP frames pass untouched, packets it
//! cannot parse pass untouched (the kernel validates them), at every truncation of each header
//! stack, and VIP packets it cannot deliver are passed to the kernel or dropped, each with its
//! counter.
use std::net::SocketAddr;

use lb_common::stats::Stat;
use lb_userspace::{
    config::Protocol::Tcp,
    testkit::{
        lb::{Ingress, XDP_TX},
        netns::{CLIENT_MAC, FX_MTU, LB_MAC},
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::fixture::{self, Backend, Fixture, Output};

/// A jumbo frame's length (an MTU of 8986 plus the Ethernet header).
const JUMBO: usize = 9000;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn syn4() -> Vec<u8> {
    packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.1:80"), F::Syn, b"")
}

fn syn6() -> Vec<u8> {
    packets::tcp(
        sa("[2001:db8::10]:40000"),
        sa("[2001:db8:100::1]:80"),
        F::Syn,
        b"",
    )
}

/// `pkt` (IPv6) with a fragment header (next header TCP, offset 0, more fragments) before its
/// transport header.
fn with_ipv6_fragment_header(pkt: &[u8]) -> Vec<u8> {
    let mut p = pkt[..54].to_vec();
    p[20] = 44;
    p.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 42]);
    p.extend_from_slice(&pkt[54..]);
    let len = u16::from_be_bytes([p[18], p[19]]) + 8;
    p[18..20].copy_from_slice(&len.to_be_bytes());
    p
}

/// `syn4()` with its IPv4 header edited, checksum fixed.
fn syn4_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = syn4();
    edit(&mut p);
    packets::fix_ipv4_checksum(&mut p);
    p
}

pub fn fixtures() -> Vec<Fixture> {
    let pass = |name: &str, counter, input| Fixture::pass(format!("pass/{name}"), counter, input);
    let drop = |name: &str, counter, input| Fixture::drop(format!("drop/{name}"), counter, input);
    let mut v = vec![
        pass(
            "ipv4-not-a-vip",
            Stat::PassNoVip,
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.9:80"), F::Syn, b""),
        ),
        pass(
            "ipv4-vip-address-other-port",
            Stat::PassNoVip,
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.1:81"), F::Syn, b""),
        ),
        pass(
            "ipv4-vip-port-other-protocol",
            Stat::PassNoVip,
            packets::udp(sa("198.18.0.10:40000"), sa("198.18.100.1:80"), b"x"),
        ),
        pass(
            "ipv6-not-a-vip",
            Stat::PassNoVip,
            packets::tcp(
                sa("[2001:db8::10]:1"),
                sa("[2001:db8:100::9]:80"),
                F::Syn,
                b"",
            ),
        ),
        pass(
            "icmp-echo-to-a-non-vip-address",
            Stat::PassNoVip,
            packets::icmp_echo(
                "198.18.0.10".parse().unwrap(),
                "198.18.100.9".parse().unwrap(),
            ),
        ),
        pass(
            "icmpv6-echo-to-a-non-vip-address",
            Stat::PassNoVip,
            packets::icmp_echo(
                "2001:db8::10".parse().unwrap(),
                "2001:db8:100::9".parse().unwrap(),
            ),
        ),
        pass(
            "arp",
            Stat::PassNotIp,
            packets::arp_request([198, 18, 0, 10], [198, 18, 0, 2]),
        ),
        pass("lldp", Stat::PassNotIp, {
            let mut p = vec![0x01, 0x80, 0xC2, 0, 0, 0x0E];
            p.extend_from_slice(&CLIENT_MAC);
            p.extend_from_slice(&[0x88, 0xCC]);
            p.resize(60, 0);
            p
        }),
        pass("vlan-tagged-frame-is-not-parsed-yet", Stat::PassNotIp, {
            let plain = syn4();
            let mut p = plain[..12].to_vec();
            p.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            p.extend_from_slice(&plain[12..]);
            p
        }),
        pass(
            "ethernet-header-only",
            Stat::PassUnparsed,
            syn4()[..14].to_vec(),
        ),
        pass(
            "truncated-ipv4-header",
            Stat::PassUnparsed,
            syn4()[..24].to_vec(),
        ),
        // IP length claims the whole segment but only 10 bytes of TCP arrived.
        pass(
            "truncated-tcp-header",
            Stat::PassUnparsed,
            syn4()[..44].to_vec(),
        ),
        pass(
            "ipv4-total-length-beyond-packet",
            Stat::PassUnparsed,
            syn4_with(|p| p[16..18].copy_from_slice(&200u16.to_be_bytes())),
        ),
        pass(
            "ipv4-total-length-below-header",
            Stat::PassUnparsed,
            syn4_with(|p| p[16..18].copy_from_slice(&12u16.to_be_bytes())),
        ),
        pass("ipv4-ihl-below-5", Stat::PassUnparsed, {
            let mut p = syn4();
            p[14] = 0x44;
            p
        }),
        // The IP length ends inside the TCP header (the rest is trailing junk): a segment the
        // backend would refuse, to a VIP.
        drop(
            "ipv4-total-length-too-short-for-tcp",
            Stat::DropBadTcpHeader,
            syn4_with(|p| p[16..18].copy_from_slice(&30u16.to_be_bytes())),
        ),
        pass("ipv4-version-field-wrong", Stat::PassUnparsed, {
            let mut p = syn4();
            p[14] = 0x65;
            p
        }),
        pass(
            "truncated-ipv6-header",
            Stat::PassUnparsed,
            syn6()[..40].to_vec(),
        ),
        pass("ipv6-payload-length-beyond-packet", Stat::PassUnparsed, {
            let mut p = syn6();
            p[18..20].copy_from_slice(&300u16.to_be_bytes());
            p
        }),
        pass(
            "ipv4-fragment-to-a-non-vip-address",
            Stat::PassFragment,
            packets::first_fragment(packets::tcp(
                sa("198.18.0.10:1"),
                sa("198.18.100.9:80"),
                F::Syn,
                b"",
            )),
        ),
        pass(
            "ipv6-too-many-extension-headers",
            Stat::PassUnparsed,
            packets::with_ipv6_ext_headers(&syn6(), 5),
        ),
        pass(
            "ipv6-fragment-to-a-non-vip-address",
            Stat::PassFragment,
            with_ipv6_fragment_header(&packets::tcp(
                sa("[2001:db8::10]:1"),
                sa("[2001:db8:100::9]:80"),
                F::Syn,
                b"",
            )),
        ),
        drop(
            "ipv4-first-fragment-to-a-vip",
            Stat::DropFragment,
            packets::first_fragment(syn4()),
        ),
        drop(
            "ipv4-later-fragment-to-a-vip",
            Stat::DropFragment,
            // Offset 1480.
            syn4_with(|p| p[20..22].copy_from_slice(&185u16.to_be_bytes())),
        ),
        drop(
            "ipv6-fragment-to-a-vip",
            Stat::DropFragment,
            with_ipv6_fragment_header(&syn6()),
        ),
    ];

    // Every truncation of each header stack, from a bare Ethernet header up to one byte short of
    // the whole packet: the kernel gets it untouched, at every length.
    let bases = [
        (
            "tcp4",
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.1:80"), F::Syn, b"x"),
            14 + 20 + 20,
        ),
        (
            "tcp6",
            packets::tcp(
                sa("[2001:db8::10]:40000"),
                sa("[2001:db8:100::1]:80"),
                F::Syn,
                b"x",
            ),
            14 + 40 + 20,
        ),
        (
            "udp4",
            packets::udp(sa("198.18.0.10:40000"), sa("198.18.100.1:53"), b"x"),
            14 + 20 + 8,
        ),
        (
            "udp6",
            packets::udp(sa("[2001:db8::10]:40000"), sa("[2001:db8:100::1]:53"), b"x"),
            14 + 40 + 8,
        ),
    ];
    for (name, pkt, headers) in bases {
        for len in 14..pkt.len() {
            let what = if len < headers { "header" } else { "payload" };
            let name = format!("truncated/{name}-{what}-at-{len}-bytes");
            v.push(Fixture::pass(name, Stat::PassUnparsed, pkt[..len].to_vec()));
        }
    }

    // VIP packets that cannot be delivered as they are.
    let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.3:80"));
    v.push(
        // Encapsulated, MACs still the client's: the kernel forwards it and resolves the
        // neighbour on the way.
        Fixture::forward(
            "deliver/no-neighbour-goes-to-kernel-encapsulated",
            Tcp,
            (c, vip),
            packets::tcp(c, vip, F::Syn, b""),
            Ingress::Fx0,
        )
        .kernel_forwards()
        .backend(Backend::Is("198.18.1.99".parse().unwrap())),
    );
    v.push(
        Fixture::drop(
            "deliver/no-route-drops",
            Stat::DropNoRoute,
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.4:80"), F::Syn, b""),
        )
        .from(Ingress::Fx0),
    );
    let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.1:80"));
    // Inner packet exactly the MTU: 20 more bytes of outer header do not fit.
    let input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; FX_MTU - 40]);
    assert!(input[20] & 0x40 != 0, "the fixture needs DF set");
    v.push(Fixture {
        action: XDP_TX,
        output: Output::Bytes(too_big_reply(&input, (FX_MTU - 20) as u32)),
        ..Fixture::pass(
            "deliver/too-big-answers-fragmentation-needed",
            Stat::TxIcmpTooBig,
            input,
        )
        .from(Ingress::Fx0)
    });
    let (c6, vip6) = (sa("[2001:db8::10]:40000"), sa("[2001:db8:100::1]:80"));
    let input = packets::tcp(c6, vip6, F::Ack, &vec![0x55u8; FX_MTU - 60]);
    v.push(Fixture {
        action: XDP_TX,
        output: Output::Bytes(too_big_reply(&input, (FX_MTU - 40) as u32)),
        ..Fixture::pass(
            "deliver/too-big-answers-packet-too-big-v6",
            Stat::TxIcmpTooBig,
            input,
        )
        .from(Ingress::Fx0)
    });
    // Jumbo frames arrive in several buffers (test_run splits what exceeds a page, as a NIC or
    // veth does): a 9000-byte one still gets its "too big" answer, cut from the whole frame.
    for (name, c, vip, outer) in [
        (
            "jumbo-frame-too-big-answers-fragmentation-needed",
            c,
            vip,
            20,
        ),
        (
            "jumbo-frame-too-big-answers-packet-too-big-v6",
            c6,
            vip6,
            40,
        ),
    ] {
        let payload = JUMBO - 14 - if c.is_ipv4() { 40 } else { 60 };
        let input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; payload]);
        assert_eq!(input.len(), JUMBO);
        v.push(Fixture {
            action: XDP_TX,
            output: Output::Bytes(too_big_reply(&input, (FX_MTU - outer) as u32)),
            ..Fixture::pass(format!("deliver/{name}"), Stat::TxIcmpTooBig, input).from(Ingress::Fx0)
        });
    }
    v.push(Fixture::pass(
        "pass/jumbo-frame-not-for-a-vip-untouched",
        Stat::PassNoVip,
        packets::tcp(
            sa("198.18.0.10:40000"),
            sa("198.18.100.9:80"),
            F::Ack,
            &vec![0x66u8; JUMBO - 54],
        ),
    ));
    v.push(Fixture::drop(
        "drop/jumbo-frame-with-a-bad-tcp-data-offset",
        Stat::DropBadTcpHeader,
        {
            let mut p = packets::tcp(c, vip, F::Ack, &vec![0x77u8; JUMBO - 54]);
            p[14 + 20 + 12] = 0x40;
            p
        },
    ));
    let mut input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; FX_MTU - 40]);
    input[20] &= !0x40;
    packets::fix_ipv4_checksum(&mut input);
    v.push(
        Fixture::drop("deliver/too-big-without-df-drops", Stat::DropTooBig, input)
            .from(Ingress::Fx0),
    );
    v
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    fixture::trials(fx0, fixtures())
}

/// The ICMP error the load balancer should answer `input` with, advertising `mtu`: built here
/// from the RFCs, independently of the program.
fn too_big_reply(input: &[u8], mtu: u32) -> Vec<u8> {
    let v4 = input[14] >> 4 == 4;
    let mut out = Vec::new();
    out.extend_from_slice(&CLIENT_MAC);
    out.extend_from_slice(&LB_MAC);
    if v4 {
        let quote = &input[14..14 + 28];
        out.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&input[30..34]); // from the VIP
        ip.extend_from_slice(&input[26..30]); // to the client
        let ck = packets::checksum(&ip);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        out.extend_from_slice(&ip);
        let mut icmp = vec![3, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&(mtu as u16).to_be_bytes());
        icmp.extend_from_slice(quote);
        let ck = packets::checksum(&icmp);
        icmp[2..4].copy_from_slice(&ck.to_be_bytes());
        out.extend_from_slice(&icmp);
    } else {
        let quote = &input[14..14 + 48];
        out.extend_from_slice(&[0x86, 0xDD]);
        out.extend_from_slice(&[0x60, 0, 0, 0, 0, 56, 58, 64]);
        let (src, dst) = (&input[38..54], &input[22..38]);
        out.extend_from_slice(src);
        out.extend_from_slice(dst);
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(quote);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(src);
        pseudo.extend_from_slice(dst);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(&icmp);
        let ck = packets::checksum(&pseudo);
        icmp[2..4].copy_from_slice(&ck.to_be_bytes());
        out.extend_from_slice(&icmp);
    }
    out
}
