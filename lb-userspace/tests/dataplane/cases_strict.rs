//! Packets a router's or host's kernel would refuse are never forwarded: to a VIP they are
//! dropped, each class with its reason; to any other address they go to the kernel untouched.
//! Every class has well-formed neighbours that must still be forwarded: the checks refuse what
//! is broken, not what is unusual. The classes are the ones an outside probe found forwarded:
//! TCP data offsets below 5 or past the segment, TCP headers cut short with honest IP lengths,
//! broken IPv4 options, broken IPv6 extension chains, and source routing.
use std::net::SocketAddr;

use lb_common::stats::Stat;
use lb_userspace::{
    config::Protocol::{self, Tcp, Udp},
    testkit::{
        lb::Ingress,
        packets::{self, Tcp as F},
    },
};
use libtest_mimic::Trial;

use crate::fixture::{self, Fixture};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A client and VIP per family (TCP port 80, UDP port 53 of the fixture configuration).
fn flow(v6: bool, proto: Protocol) -> (SocketAddr, SocketAddr) {
    let port = if proto == Udp { 53 } else { 80 };
    if v6 {
        (
            sa("[2001:db8::10]:41234"),
            sa(&format!("[2001:db8:100::1]:{port}")),
        )
    } else {
        (sa("198.18.0.10:41234"), sa(&format!("198.18.100.1:{port}")))
    }
}

/// Offset of the transport header in a packet built by `packets` (no options or extensions).
fn l4(v6: bool) -> usize {
    if v6 { 14 + 40 } else { 14 + 20 }
}

/// Add `n` to the IP length field (total length, or IPv6 payload length).
fn grow_ip_len(p: &mut [u8], v6: bool, n: isize) {
    let at = if v6 { 18 } else { 16 };
    let len = u16::from_be_bytes([p[at], p[at + 1]]) as isize + n;
    p[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    if !v6 {
        packets::fix_ipv4_checksum(p);
    }
}

/// A SYN whose TCP header carries `opt_words` 4-byte words of options (NOPs), with its data
/// offset set to `doff` words, cut (with the IP length set to match) after `keep` bytes of TCP.
fn tcp_header(v6: bool, opt_words: usize, doff: u8, keep: Option<usize>) -> Vec<u8> {
    let (c, vip) = flow(v6, Tcp);
    let plain = packets::tcp(c, vip, F::Syn, b"");
    let at = l4(v6);
    let mut p = plain[..at + 20].to_vec();
    p.extend(std::iter::repeat_n(1u8, opt_words * 4));
    p.extend_from_slice(&plain[at + 20..]);
    p[at + 12] = doff << 4;
    grow_ip_len(&mut p, v6, (opt_words * 4) as isize);
    if let Some(keep) = keep {
        let cut = (20 + opt_words * 4 - keep) as isize;
        p.truncate(at + keep);
        grow_ip_len(&mut p, v6, -cut);
    }
    p
}

/// An IPv4 SYN to the VIP (or to `dst`) with `opts` as IPv4 options, padded with End of
/// Options to a multiple of 4 bytes.
fn ipv4_with_options(opts: &[u8], dst: Option<&str>) -> Vec<u8> {
    let (c, mut vip) = flow(false, Tcp);
    if let Some(d) = dst {
        vip = sa(d);
    }
    let plain = packets::tcp(c, vip, F::Syn, b"");
    let mut o = opts.to_vec();
    o.resize(opts.len().div_ceil(4) * 4, 0);
    let mut p = plain[..34].to_vec();
    p.extend_from_slice(&o);
    p.extend_from_slice(&plain[34..]);
    p[14] = 0x40 | (5 + o.len() / 4) as u8;
    grow_ip_len(&mut p, false, o.len() as isize);
    p
}

/// An IPv6 SYN to the VIP (or to `dst`) with extension headers: (type, bytes after the next
/// header and length fields; a multiple of 8 less 2).
fn ipv6_with_headers(headers: &[(u8, &[u8])], dst: Option<&str>) -> Vec<u8> {
    let (c, mut vip) = flow(true, Tcp);
    if let Some(d) = dst {
        vip = sa(d);
    }
    let plain = packets::tcp(c, vip, F::Syn, b"");
    let mut p = plain[..54].to_vec();
    let transport = p[20];
    let mut added = 0;
    for (i, (kind, body)) in headers.iter().enumerate() {
        assert_eq!(
            (body.len() + 2) % 8,
            0,
            "an extension header is 8-byte units"
        );
        if i == 0 {
            p[20] = *kind;
        }
        let next = headers.get(i + 1).map_or(transport, |h| h.0);
        p.push(next);
        p.push(((body.len() + 2) / 8 - 1) as u8);
        p.extend_from_slice(body);
        added += body.len() + 2;
    }
    p.extend_from_slice(&plain[54..]);
    grow_ip_len(&mut p, true, added as isize);
    p
}

/// Extension headers: (type, bytes after its next-header and length fields).
type Chain<'a> = &'a [(u8, &'a [u8])];

const HBH: u8 = 0;
const ROUTING: u8 = 43;
const DSTOPTS: u8 = 60;
/// PadN filling the 6 bytes after an options header's first two.
const PADN4: [u8; 6] = [1, 4, 0, 0, 0, 0];

pub fn fixtures() -> Vec<Fixture> {
    let mut v = Vec::new();
    let drop = |name: String, why: Stat, input: Vec<u8>| {
        Fixture::drop(format!("strict/{name}"), why, input)
    };
    let forward = |name: String, proto: Protocol, v6: bool, input: Vec<u8>| {
        Fixture::forward(
            format!("strict/{name}"),
            proto,
            flow(v6, proto),
            input,
            Ingress::Fx0,
        )
    };
    for v6 in [false, true] {
        let fam = if v6 { "ipv6" } else { "ipv4" };
        // TCP data offset.
        for doff in 0..5u8 {
            v.push(drop(
                format!("{fam}-tcp-data-offset-{doff}"),
                Stat::DropBadTcpHeader,
                tcp_header(v6, 0, doff, None),
            ));
        }
        v.push(forward(
            format!("{fam}-tcp-data-offset-5"),
            Tcp,
            v6,
            tcp_header(v6, 0, 5, None),
        ));
        for doff in [6u8, 10, 15] {
            v.push(drop(
                format!("{fam}-tcp-data-offset-{doff}-past-a-20-byte-segment"),
                Stat::DropBadTcpHeader,
                tcp_header(v6, 0, doff, None),
            ));
        }
        v.push(forward(
            format!("{fam}-tcp-with-20-bytes-of-options"),
            Tcp,
            v6,
            tcp_header(v6, 5, 10, None),
        ));
        // A 40-byte header cut short, the IP length honest about the cut.
        for keep in [20, 24, 26, 36, 37] {
            v.push(drop(
                format!("{fam}-tcp-header-of-40-cut-after-{keep}"),
                Stat::DropBadTcpHeader,
                tcp_header(v6, 5, 10, Some(keep)),
            ));
        }
        for keep in [8, 12, 19] {
            v.push(drop(
                format!("{fam}-tcp-segment-of-{keep}-bytes"),
                Stat::DropBadTcpHeader,
                tcp_header(v6, 0, 5, Some(keep)),
            ));
        }
        // UDP length.
        let (c, vip) = flow(v6, Udp);
        let udp = packets::udp(c, vip, b"query");
        let at = l4(v6);
        for (name, len) in [("below-8", 7u16), ("past-the-payload", 14)] {
            let mut p = udp.clone();
            p[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
            v.push(drop(
                format!("{fam}-udp-length-{name}"),
                Stat::DropBadUdpHeader,
                p,
            ));
        }
        let mut shorter = udp.clone();
        shorter[at + 4..at + 6].copy_from_slice(&9u16.to_be_bytes());
        v.push(forward(
            format!("{fam}-udp-length-shorter-than-the-payload"),
            Udp,
            v6,
            shorter,
        ));
    }

    // IPv4 options: (name, options, what becomes of them).
    let bad = Some(Stat::DropBadIpOptions);
    let route = Some(Stat::DropSourceRoute);
    let options: [(&str, &[u8], Option<Stat>); 22] = [
        ("nops", &[1, 1, 1, 1], None),
        ("end-of-options", &[0, 7, 3], None),
        ("record-route", &[7, 7, 4, 0, 0, 0, 0, 1], None),
        ("record-route-full", &[7, 7, 8, 198, 18, 0, 1, 1], None),
        ("record-route-without-length", &[1, 1, 1, 7], bad),
        ("record-route-of-length-0", &[7, 0, 4, 0], bad),
        ("record-route-of-length-1", &[7, 1, 4, 0], bad),
        (
            "record-route-pointer-below-4",
            &[7, 7, 3, 0, 0, 0, 0, 1],
            bad,
        ),
        ("record-route-twice", &[7, 3, 4, 7, 3, 4, 1, 1], bad),
        ("timestamp", &[68, 8, 5, 0, 0, 0, 0, 0], None),
        (
            "timestamp-with-addresses",
            &[68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            None,
        ),
        ("timestamp-of-length-2", &[68, 2, 1, 1], bad),
        (
            "timestamp-flag-2",
            &[68, 12, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0],
            bad,
        ),
        ("timestamp-pointer-below-5", &[68, 8, 4, 0, 0, 0, 0, 0], bad),
        (
            "timestamp-overrunning-the-header",
            &[68, 12, 5, 0, 0, 0, 0, 0],
            bad,
        ),
        ("router-alert", &[148, 4, 0, 0], None),
        ("router-alert-overrunning-the-header", &[1, 1, 148, 4], bad),
        ("router-alert-of-length-3", &[148, 3, 0, 1], bad),
        ("unknown-option", &[30, 4, 0, 0], None),
        ("unknown-option-of-length-0", &[30, 0, 0, 0], bad),
        ("loose-source-route", &[131, 7, 4, 198, 18, 0, 1, 1], route),
        ("strict-source-route", &[137, 7, 4, 198, 18, 0, 1, 1], route),
    ];
    for (name, opts, fate) in options {
        let p = ipv4_with_options(opts, None);
        let name = format!("ipv4-options-{name}");
        v.push(match fate {
            None => forward(name, Tcp, false, p),
            Some(why) => drop(name, why, p),
        });
    }
    // The host's own traffic with broken options is the kernel's to judge.
    v.push(Fixture::pass(
        "strict/ipv4-options-broken-to-a-non-vip-address-pass",
        Stat::PassUnparsed,
        ipv4_with_options(&[7, 1, 4, 0], Some("198.18.100.9:80")),
    ));

    // IPv6 extension chains: (name, headers, what becomes of them).
    let bad = Some(Stat::DropBadIpv6Ext);
    let chains: [(&str, Chain, Option<Stat>); 14] = [
        ("hop-by-hop", &[(HBH, &PADN4)], None),
        (
            "hop-by-hop-then-destination-options",
            &[(HBH, &PADN4), (DSTOPTS, &PADN4)],
            None,
        ),
        (
            "destination-options-before-hop-by-hop",
            &[(DSTOPTS, &PADN4), (HBH, &PADN4)],
            bad,
        ),
        ("hop-by-hop-twice", &[(HBH, &PADN4), (HBH, &PADN4)], bad),
        (
            "hop-by-hop-option-overrunning-it",
            &[(HBH, &[30, 8, 0, 0, 0, 0])],
            bad,
        ),
        (
            "hop-by-hop-router-alert",
            &[(HBH, &[5, 2, 0, 0, 1, 0])],
            None,
        ),
        (
            "hop-by-hop-router-alert-of-length-3",
            &[(HBH, &[5, 3, 0, 0, 0, 0])],
            bad,
        ),
        // Jumbo Payload: discard-if-unknown type, and no jumbogram fits our links.
        ("jumbo-payload", &[(HBH, &[0xC2, 4, 0, 1, 0, 0])], bad),
        ("padn-with-data", &[(HBH, &[1, 4, 0, 0, 9, 0])], bad),
        // PadN of 6 bytes, then two Pad1: 8 bytes of padding in a row.
        (
            "more-than-7-bytes-of-padding",
            &[(HBH, &[1, 4, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0])],
            bad,
        ),
        (
            "unknown-skippable-option",
            &[(DSTOPTS, &[30, 4, 0, 0, 0, 0])],
            None,
        ),
        (
            "unknown-discard-option",
            &[(DSTOPTS, &[0x5E, 4, 0, 0, 0, 0])],
            bad,
        ),
        (
            "routing-header-without-segments-left",
            &[(ROUTING, &[0, 0, 0, 0, 0, 0])],
            None,
        ),
        (
            "type-0-routing-header-with-segments-left",
            &[(
                ROUTING,
                &[
                    0, 1, 0, 0, 0, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                ],
            )],
            route,
        ),
    ];
    for (name, headers, fate) in chains {
        let p = ipv6_with_headers(headers, None);
        let name = format!("ipv6-{name}");
        v.push(match fate {
            None => forward(name, Tcp, true, p),
            Some(why) => drop(name, why, p),
        });
    }
    v.push(Fixture::pass(
        "strict/ipv6-extension-chain-broken-to-a-non-vip-address-pass",
        Stat::PassUnparsed,
        ipv6_with_headers(
            &[(DSTOPTS, &PADN4), (HBH, &PADN4)],
            Some("[2001:db8:100::9]:80"),
        ),
    ));
    v
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    fixture::trials(fx0, fixtures())
}
