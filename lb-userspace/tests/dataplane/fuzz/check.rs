//! Checking the load balancer's output against the model.
use std::net::IpAddr;

use anyhow::{Context as _, Result, bail, ensure};
use lb_userspace::{
    testkit::{
        lb::{
            Ingress, Lb, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, action_name, hex, mac_of,
            same_bytes,
        },
        netns::{FX_MTU, LB_MAC},
        packets,
    },
    wire::Prefix,
};

use super::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6,
    OUTER_TTL,
    model::{
        Balanced, EchoRequest, Expect, Model, NextHop, Verdict, be16, next_hop, prefix_contains,
        v4_at, v6_at,
    },
};
use crate::configs;

/// What happened to a packet, for the tally.
fn outcome_name(action: u32, changed: bool) -> &'static str {
    match (action, changed) {
        (XDP_PASS, false) => "pass",
        (XDP_PASS, true) => "pass-encapsulated",
        (XDP_TX, _) => "tx",
        (XDP_REDIRECT, _) => "redirect",
        (XDP_DROP, _) => "drop",
        _ => "other",
    }
}

pub(super) struct LbChecker {
    fx0: u32,
    pub(super) lb: Lb,
    pub(super) model: Model,
}

impl LbChecker {
    pub(super) fn new(fx0: u32) -> Result<LbChecker> {
        Ok(LbChecker {
            fx0,
            lb: configs::load(fx0, configs::FIXTURE)?,
            model: Model::new()?,
        })
    }

    pub(super) fn reload(&mut self) -> Result<()> {
        self.lb = configs::load(self.fx0, configs::FIXTURE)?;
        Ok(())
    }

    /// Run `input` and check the result; returns the (class, outcome) to tally.
    pub(super) fn check(
        &mut self,
        input: &[u8],
        ingress: Ingress,
    ) -> Result<(&'static str, String)> {
        let v = self.model.classify(input);
        let (action, out) = self.lb.run(input, ingress)?;
        let outcome = outcome_name(action, out != input);
        let also_allowed = (v.or_untouched && action == XDP_PASS && out == input)
            || (v.or_drop && action == XDP_DROP);
        let result = if also_allowed {
            Ok(outcome.to_string())
        } else {
            self.check_expect(&v, input, ingress, action, &out)
        };
        result
            .map(|o| (v.class, o))
            .with_context(|| format!("input class `{}`, expected {v:?}", v.class))
    }

    pub(super) fn check_expect(
        &mut self,
        v: &Verdict,
        input: &[u8],
        ingress: Ingress,
        action: u32,
        out: &[u8],
    ) -> Result<String> {
        match v.expect {
            Expect::Untouched => {
                ensure!(
                    action == XDP_PASS,
                    "{} for a packet that must pass untouched",
                    action_name(action)
                );
                same_bytes(out, input).context("passed, but modified")?;
                Ok("pass".into())
            }
            Expect::Drop => {
                ensure!(
                    action == XDP_DROP,
                    "{}, expected XDP_DROP",
                    action_name(action)
                );
                Ok("drop".into())
            }
            Expect::Echo(e) => {
                check_echo_reply(input, out, action, e)?;
                Ok("echo-reply".into())
            }
            Expect::Balance(b) => self.check_balanced(input, ingress, action, out, b),
        }
    }

    pub(super) fn check_balanced(
        &mut self,
        input: &[u8],
        ingress: Ingress,
        action: u32,
        out: &[u8],
        b: Balanced,
    ) -> Result<String> {
        let vip = &self.model.vips[b.vip];
        let drop = |why: &str| -> Result<String> {
            ensure!(
                action == XDP_DROP,
                "{}, expected XDP_DROP ({why})",
                action_name(action)
            );
            Ok(format!("drop-{why}"))
        };
        if !vip.schedulable {
            return drop("no-backend");
        }
        // The ring's choice. The configuration never changes during a run, so a flow-table
        // entry, which the program prefers, always names this same backend.
        let pick = self.lb.simulate(vip.proto, b.client, vip.socket())?;
        ensure!(
            vip.backends.contains(&pick.backend),
            "the simulator picked {}, not a backend of {}",
            pick.backend,
            vip.socket()
        );
        // The route comes first (no route: dropped whatever the size), then the MTU, then the
        // neighbour, as the kernel's FIB lookup answers.
        let hop = next_hop(pick.backend);
        if hop == NextHop::NoRoute {
            return drop("no-route");
        }
        let outer_len = if pick.backend.is_ipv4() { 20 } else { 40 };
        if b.ip_len + outer_len > FX_MTU {
            return check_too_big(input, action, out, b, FX_MTU - outer_len);
        }
        let (want_action, eth_src, eth_dst, name) = match hop {
            NextHop::NoRoute => unreachable!(),
            // Handed to the kernel to resolve the neighbour: still addressed to this host.
            NextHop::NoNeighbour => (
                XDP_PASS,
                input[6..12].try_into().unwrap(),
                input[0..6].try_into().unwrap(),
                "pass-encapsulated",
            ),
            NextHop::Neighbour => match ingress {
                Ingress::Fx0 => (XDP_TX, LB_MAC, mac_of(pick.backend), "tx"),
                Ingress::Lo => (XDP_REDIRECT, LB_MAC, mac_of(pick.backend), "redirect"),
            },
        };
        ensure!(
            action == want_action,
            "{}, expected {} toward {}",
            action_name(action),
            action_name(want_action),
            pick.backend
        );
        let (outer_src, outer_dst) = check_encapsulation(
            input,
            out,
            b.ip_len,
            &vip.backends,
            (&self.model.encap_v4, &self.model.encap_v6),
        )?;
        ensure!(
            out[..6] == eth_dst && out[6..12] == eth_src,
            "Ethernet addresses {} -> {}, expected {} -> {}",
            hex(&out[6..12]),
            hex(&out[..6]),
            hex(&eth_src),
            hex(&eth_dst)
        );
        ensure!(
            outer_dst == pick.backend,
            "sent to {outer_dst}, but the flow's backend is {}",
            pick.backend
        );
        let want_src = self.lb.outer_src(pick.backend, pick.hash);
        ensure!(
            outer_src == want_src,
            "outer source {outer_src}, expected {want_src} for flow hash {:#x}",
            pick.hash
        );
        // Everything else (TOS / traffic class, DF, flow label) byte for byte.
        let want =
            packets::encapsulated(input, eth_src, eth_dst, want_src, pick.backend, pick.hash);
        same_bytes(out, &want)?;
        Ok(name.into())
    }
}

/// A packet for a VIP that would exceed the MTU toward its backend once encapsulated: its sender
/// gets ICMP "fragmentation needed" / ICMPv6 "packet too big" advertising `mtu` (what fits
/// inside our outer header), sent back with XDP_TX, so its path MTU discovery works. Not for an
/// ICMP error (an error never answers an error, RFC 1122 3.2.2) nor an IPv4 packet without DF (a
/// router would fragment it; a load balancer cannot): those are dropped. An IPv4 packet with
/// options may be answered or dropped.
pub(super) fn check_too_big(
    input: &[u8],
    action: u32,
    out: &[u8],
    b: Balanced,
    mtu: usize,
) -> Result<String> {
    let ip = &input[ETH_HLEN..];
    let v4 = ip[0] >> 4 == 4;
    let may_answer = !b.icmp_error && (!v4 || be16(ip, 6) & 0x4000 != 0);
    if action == XDP_DROP && (!may_answer || (v4 && ip[0] != 0x45)) {
        return Ok("drop-too-big".into());
    }
    ensure!(
        may_answer,
        "{} for a packet too big to forward, expected XDP_DROP (no ICMP error may be sent: {})",
        action_name(action),
        if b.icmp_error {
            "it is an ICMP error itself"
        } else {
            "IPv4 without DF"
        }
    );
    ensure!(
        action == XDP_TX,
        "{} for a packet too big to forward, expected XDP_TX with an ICMP error",
        action_name(action)
    );
    // Ethernet: back where it came from.
    ensure!(
        out.len() >= ETH_HLEN && out[..6] == input[6..12] && out[6..12] == input[..6],
        "ICMP error's Ethernet header {} (input's {})",
        hex(&out[..out.len().min(14)]),
        hex(&input[..14])
    );
    let o = &out[ETH_HLEN..];
    // The quote: the offending packet's IP header and 8 bytes, as RFC 792 asks; for IPv6 as much
    // as fits, at least that much.
    let (hdr, quote_min) = if v4 { (20, 28) } else { (40, 48) };
    let (src, dst, msg) = if v4 {
        ensure!(
            be16(out, 12) == ETH_P_IP && o.len() >= 20 && o[0] == 0x45,
            "ICMP error: not an IPv4 header with IHL 5: {}",
            hex(o)
        );
        ensure!(
            packets::checksum(&o[..20]) == 0,
            "ICMP error: IPv4 header checksum invalid"
        );
        let tot = be16(o, 2) as usize;
        ensure!(
            tot == o.len(),
            "ICMP error: total length {tot}, {} bytes after Ethernet",
            o.len()
        );
        ensure!(o[9] == IPPROTO_ICMP, "ICMP error: protocol {}", o[9]);
        ensure!(
            be16(o, 6) & 0x3FFF == 0,
            "ICMP error: IPv4 header says fragment"
        );
        ensure!(o[8] > 0, "ICMP error: TTL 0");
        let m = &o[20..];
        ensure!(
            m.len() >= 8 && m[0] == 3 && m[1] == 4,
            "ICMP error: not type 3 code 4 (fragmentation needed): {}",
            hex(m)
        );
        ensure!(
            packets::checksum(m) == 0,
            "ICMP error: ICMP checksum invalid"
        );
        let adv = be16(m, 6) as usize;
        ensure!(
            adv == mtu,
            "ICMP error advertises MTU {adv}, the path allows {mtu}"
        );
        (v4_at(o, 12), v4_at(o, 16), m)
    } else {
        ensure!(
            be16(out, 12) == ETH_P_IPV6 && o.len() >= 40 && o[0] >> 4 == 6,
            "ICMP error: not an IPv6 header: {}",
            hex(o)
        );
        let payload = be16(o, 4) as usize;
        ensure!(
            payload + 40 == o.len(),
            "ICMP error: payload length {payload}, {} bytes after Ethernet",
            o.len()
        );
        ensure!(o[6] == IPPROTO_ICMPV6, "ICMP error: next header {}", o[6]);
        ensure!(o[7] > 0, "ICMP error: hop limit 0");
        let m = &o[40..];
        ensure!(
            m.len() >= 8 && m[0] == 2 && m[1] == 0,
            "ICMP error: not ICMPv6 type 2 code 0 (packet too big): {}",
            hex(m)
        );
        ensure!(
            icmp_checksum_ok(out, false, ETH_HLEN + 40, out.len()),
            "ICMP error: ICMPv6 checksum invalid"
        );
        let adv = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        ensure!(
            adv == mtu,
            "ICMP error advertises MTU {adv}, the path allows {mtu}"
        );
        ensure!(
            o.len() <= 1280,
            "ICMPv6 error of {} bytes exceeds the minimum MTU",
            o.len()
        );
        (v6_at(o, 8), v6_at(o, 24), m)
    };
    // From the VIP (the packet's destination) to the packet's source.
    let (in_src, in_dst) = if v4 {
        (v4_at(ip, 12), v4_at(ip, 16))
    } else {
        (v6_at(ip, 8), v6_at(ip, 24))
    };
    ensure!(
        src == in_dst && dst == in_src,
        "ICMP error {src} -> {dst}, expected {in_dst} -> {in_src}"
    );
    let quote = &msg[8..];
    ensure!(
        quote.len() >= quote_min && quote.len() <= b.ip_len && quote == &ip[..quote.len()],
        "ICMP error quotes {} bytes that are not the start of the packet (at least {hdr} + 8 \
         expected): {}",
        quote.len(),
        hex(quote)
    );
    Ok("icmp-too-big".into())
}

/// The invariants of an encapsulated packet, checked field by field so a failure names the
/// field; returns the outer source and destination.
fn check_encapsulation(
    input: &[u8],
    out: &[u8],
    inner_len: usize,
    backends: &[IpAddr],
    (prefix_v4, prefix_v6): (&Prefix, &Prefix),
) -> Result<(IpAddr, IpAddr)> {
    ensure!(out.len() >= ETH_HLEN + 20, "output of {} bytes", out.len());
    let inner_v4 = input[ETH_HLEN] >> 4 == 4;
    let inner_proto = if inner_v4 { IPPROTO_IPIP } else { IPPROTO_IPV6 };
    let outer = &out[ETH_HLEN..];
    let (outer_len, src, dst) = match be16(out, 12) {
        ETH_P_IP => {
            ensure!(outer[0] == 0x45, "outer IPv4 version/IHL {:#04x}", outer[0]);
            ensure!(
                packets::checksum(&outer[..20]) == 0,
                "outer IPv4 header checksum invalid: {}",
                hex(&outer[..20])
            );
            let tot = be16(outer, 2) as usize;
            ensure!(
                tot == inner_len + 20,
                "outer total length {tot}, inner IP length {inner_len}"
            );
            ensure!(
                be16(outer, 6) & 0x3FFF == 0,
                "outer header says fragment: {:#06x}",
                be16(outer, 6)
            );
            ensure!(outer[8] == OUTER_TTL, "outer TTL {}", outer[8]);
            ensure!(
                outer[9] == inner_proto,
                "outer protocol {} for an IPv{} inner packet",
                outer[9],
                if inner_v4 { 4 } else { 6 }
            );
            (20, v4_at(outer, 12), v4_at(outer, 16))
        }
        ETH_P_IPV6 => {
            ensure!(out.len() >= ETH_HLEN + 40, "output of {} bytes", out.len());
            ensure!(outer[0] >> 4 == 6, "outer IPv6 version {}", outer[0] >> 4);
            let payload = be16(outer, 4) as usize;
            ensure!(
                payload == inner_len,
                "outer payload length {payload}, inner IP length {inner_len}"
            );
            ensure!(
                outer[6] == inner_proto,
                "outer next header {} for an IPv{} inner packet",
                outer[6],
                if inner_v4 { 4 } else { 6 }
            );
            ensure!(outer[7] == OUTER_TTL, "outer hop limit {}", outer[7]);
            (40, v6_at(outer, 8), v6_at(outer, 24))
        }
        t => bail!("encapsulated with Ethernet type {t:#06x}"),
    };
    ensure!(
        backends.contains(&dst),
        "outer destination {dst} is not a backend of this VIP ({backends:?})"
    );
    let prefix = if src.is_ipv4() { prefix_v4 } else { prefix_v6 };
    ensure!(
        prefix_contains(prefix, src),
        "outer source {src} outside the encapsulation prefix {prefix}"
    );
    ensure!(
        out[ETH_HLEN + outer_len..] == input[ETH_HLEN..],
        "the inner packet (and padding) is not the input's IP packet:\n got: {}\nwant: {}",
        hex(&out[ETH_HLEN + outer_len..]),
        hex(&input[ETH_HLEN..])
    );
    Ok((src, dst))
}

/// Whether the ICMP/ICMPv6 message between `off` and `end` has a valid checksum (for ICMPv6
/// with the pseudo-header of the IPv6 header's addresses).
fn icmp_checksum_ok(f: &[u8], v4: bool, off: usize, end: usize) -> bool {
    if v4 {
        return packets::checksum(&f[off..end]) == 0;
    }
    let mut data = Vec::with_capacity(40 + end - off);
    data.extend_from_slice(&f[ETH_HLEN + 8..ETH_HLEN + 40]);
    data.extend_from_slice(&((end - off) as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    data.extend_from_slice(&f[off..end]);
    packets::checksum(&data) == 0
}

pub(super) fn check_echo_reply(
    input: &[u8],
    out: &[u8],
    action: u32,
    e: EchoRequest,
) -> Result<()> {
    ensure!(
        action == XDP_TX,
        "{} for an echo request to a VIP address, expected XDP_TX (a reply)",
        action_name(action)
    );
    ensure!(out.len() == input.len(), "reply of {} bytes", out.len());
    ensure!(
        out[..6] == input[6..12] && out[6..12] == input[..6] && out[12..14] == input[12..14],
        "reply's Ethernet header {} (request {})",
        hex(&out[..14]),
        hex(&input[..14])
    );
    let (i, o) = (&input[ETH_HLEN..], &out[ETH_HLEN..]);
    if e.v4 {
        ensure!(
            o[12..16] == i[16..20] && o[16..20] == i[12..16],
            "reply addresses not swapped"
        );
        ensure!(o[8] == OUTER_TTL, "reply TTL {}", o[8]);
        ensure!(
            packets::checksum(&o[..20]) == 0,
            "reply IPv4 header checksum invalid"
        );
        ensure!(
            o[..8] == i[..8] && o[9] == i[9],
            "reply IPv4 header changed beyond addresses, TTL and checksum"
        );
    } else {
        ensure!(
            o[8..24] == i[24..40] && o[24..40] == i[8..24],
            "reply addresses not swapped"
        );
        ensure!(o[7] == OUTER_TTL, "reply hop limit {}", o[7]);
        ensure!(
            o[..7] == i[..7] && out[ETH_HLEN + 40..e.icmp_off] == input[ETH_HLEN + 40..e.icmp_off],
            "reply IPv6 header changed beyond addresses and hop limit"
        );
    }
    let reply_type = if e.v4 { 0 } else { 129 };
    ensure!(
        out[e.icmp_off] == reply_type,
        "reply ICMP type {}",
        out[e.icmp_off]
    );
    ensure!(
        out[e.icmp_off + 1] == input[e.icmp_off + 1]
            && out[e.icmp_off + 4..] == input[e.icmp_off + 4..],
        "reply ICMP code, identifier, sequence, data or padding changed"
    );
    // An incremental update keeps a valid checksum valid (and an invalid one invalid: the client
    // drops that reply as the kernel would have dropped the request).
    ensure!(
        icmp_checksum_ok(out, e.v4, e.icmp_off, e.ip_end)
            == icmp_checksum_ok(input, e.v4, e.icmp_off, e.ip_end),
        "reply ICMP checksum validity differs from the request's"
    );
    Ok(())
}
