//! The model's self-test: each check it makes can fail.
use anyhow::{Context as _, Result, bail, ensure};
use lb_userspace::testkit::{
    lb::{Ingress, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, action_name},
    netns::FX_MTU,
    packets::{self, Tcp as F},
};

use super::{
    ETH_HLEN, ETH_P_IP, OUTER_TTL,
    check::{LbChecker, check_echo_reply, check_too_big},
    model::{Balanced, Expect, be16},
};

/// A named way to break a packet, for the self-tests.
type Edit<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Each invariant must be able to fail: broken variants of real outputs are rejected.
pub(super) fn model_rejects_broken_outputs(fx0: u32) -> Result<()> {
    let mut c = LbChecker::new(fx0)?;
    let vips = [
        ("198.18.0.10:40000", "198.18.100.1:80"),
        ("[2001:db8::10]:40000", "[2001:db8:100::1]:80"),
        ("198.18.0.10:40000", "198.18.100.2:80"),
    ];
    for (client, vip) in vips {
        let input = packets::tcp(client.parse()?, vip.parse()?, F::Ack, b"payload");
        let v = c.model.classify(&input);
        let Expect::Balance(b) = v.expect else {
            bail!("{vip}: classified {v:?}");
        };
        let (action, out) = c.lb.run(&input, Ingress::Fx0)?;
        c.check_expect(&v, &input, Ingress::Fx0, action, &out)
            .context("the genuine output")?;
        let outer_len = if be16(&out, 12) == ETH_P_IP { 20 } else { 40 };
        let v4_outer = outer_len == 20;
        let mut broken: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut edit = |what: &'static str, f: &dyn Fn(&mut Vec<u8>)| {
            let mut o = out.clone();
            f(&mut o);
            broken.push((what, o));
        };
        edit("ethertype", &|o| o[12] ^= 0x80);
        edit("outer version", &|o| o[14] ^= 0x20);
        edit("inner byte", &|o| *o.last_mut().unwrap() ^= 1);
        edit("padding lost", &|o| {
            o.pop();
        });
        edit("dst mac", &|o| o[0] ^= 2);
        if v4_outer {
            edit("checksum", &|o| o[24] ^= 1);
            edit("ihl", &|o| o[14] = 0x46);
            edit("total length", &|o| {
                o[17] = o[17].wrapping_add(1);
                packets::fix_ipv4_checksum(o);
            });
            edit("protocol", &|o| {
                o[23] = if o[23] == 4 { 41 } else { 4 };
                packets::fix_ipv4_checksum(o);
            });
            edit("ttl", &|o| {
                o[22] = 63;
                packets::fix_ipv4_checksum(o);
            });
            edit("outer source outside prefix", &|o| {
                o[28] = 10;
                packets::fix_ipv4_checksum(o);
            });
            edit("other backend", &|o| {
                o[33] = if o[33] == 11 { 12 } else { 11 };
                packets::fix_ipv4_checksum(o);
            });
            edit("not a backend", &|o| {
                o[33] = 99;
                packets::fix_ipv4_checksum(o);
            });
        } else {
            edit("payload length", &|o| o[19] = o[19].wrapping_add(1));
            edit("next header", &|o| o[20] = if o[20] == 4 { 41 } else { 4 });
            edit("hop limit", &|o| o[21] = 63);
            edit("outer source outside prefix", &|o| o[22] ^= 0x80);
            edit("other backend", &|o| {
                o[53] = if o[53] == 0x11 { 0x12 } else { 0x11 }
            });
            edit("not a backend", &|o| o[53] = 0x99);
            edit("flow label", &|o| o[17] ^= 1);
        }
        for (what, o) in broken {
            ensure!(
                c.check_balanced(&input, Ingress::Fx0, action, &o, b)
                    .is_err(),
                "{vip}: an output with a broken {what} was accepted"
            );
        }
        for wrong in [XDP_PASS, XDP_DROP, XDP_REDIRECT] {
            ensure!(
                c.check_balanced(&input, Ingress::Fx0, wrong, &out, b)
                    .is_err(),
                "{vip}: {} accepted for a forwarded packet",
                action_name(wrong)
            );
        }
    }
    // Too big once encapsulated: the program's ICMP error is accepted, broken ones are not, and
    // answering what must not be answered is caught.
    for (client, vip, ip_len) in [
        ("198.18.0.10:40000", "198.18.100.1:80", FX_MTU - 19),
        ("[2001:db8::10]:40000", "[2001:db8:100::1]:80", FX_MTU - 39),
    ] {
        let v4 = vip.starts_with('1');
        let overhead = if v4 { 40 } else { 60 };
        let mut input = packets::tcp(
            client.parse()?,
            vip.parse()?,
            F::Ack,
            &vec![0x5A; ip_len - overhead],
        );
        if v4 {
            input[20] |= 0x40; // DF: the sender does path MTU discovery
            packets::fix_ipv4_checksum(&mut input);
        }
        let v = c.model.classify(&input);
        let Expect::Balance(b) = v.expect else {
            bail!("{vip}: classified {v:?}");
        };
        let (action, out) = c.lb.run(&input, Ingress::Fx0)?;
        let outcome = c
            .check_expect(&v, &input, Ingress::Fx0, action, &out)
            .context("the genuine too-big answer")?;
        ensure!(outcome == "icmp-too-big", "{vip}: {outcome}");
        // The backends of these VIPs are of the VIP's family: that outer header must fit.
        let mtu = FX_MTU - if v4 { 20 } else { 40 };
        check_too_big(&input, XDP_TX, &out, b, mtu)?;
        let ip = ETH_HLEN;
        let icmp = ip + if v4 { 20 } else { 40 };
        let edits: [Edit; 6] = [
            ("icmp checksum", &|o| o[icmp + 2] ^= 1),
            ("icmp type", &|o| o[icmp] = 11),
            ("advertised mtu", &|o| o[icmp + 7] ^= 4),
            ("quote", &|o| *o.last_mut().unwrap() ^= 1),
            ("destination", &|o| o[icmp - 1] ^= 1),
            ("ethernet", &|o| o[5] ^= 1),
        ];
        for (what, edit) in edits {
            let mut o = out.clone();
            edit(&mut o);
            ensure!(
                check_too_big(&input, XDP_TX, &o, b, mtu).is_err(),
                "{vip}: a too-big answer with a broken {what} was accepted"
            );
        }
        ensure!(
            check_too_big(
                &input,
                XDP_TX,
                &out,
                Balanced {
                    icmp_error: true,
                    ..b
                },
                mtu
            )
            .is_err(),
            "{vip}: an ICMP error answered with an ICMP error was accepted"
        );
        if v4 {
            let mut no_df = input.clone();
            no_df[20] &= !0x40;
            packets::fix_ipv4_checksum(&mut no_df);
            ensure!(
                check_too_big(&no_df, XDP_TX, &out, b, mtu).is_err(),
                "an answer to an IPv4 packet without DF was accepted"
            );
        }
    }
    // A non-VIP packet: passing it modified, or not passing it, is caught.
    let input = packets::tcp(
        "198.18.0.10:1".parse()?,
        "198.18.100.9:80".parse()?,
        F::Syn,
        b"",
    );
    let v = c.model.classify(&input);
    let mut modified = input.clone();
    modified[30] ^= 1;
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_PASS, &modified)
            .is_err()
    );
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_TX, &input)
            .is_err()
    );
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_DROP, &input)
            .is_err()
    );
    // Echo replies: a correct one (built here) is accepted, and each broken variant refused.
    let req = packets::icmp_echo("198.18.0.10".parse()?, "198.18.100.1".parse()?);
    let v = c.model.classify(&req);
    let Expect::Echo(e) = v.expect else {
        bail!("echo request classified {v:?}");
    };
    let mut reply = req.clone();
    reply[..6].copy_from_slice(&req[6..12]);
    reply[6..12].copy_from_slice(&req[..6]);
    reply[26..30].copy_from_slice(&req[30..34]);
    reply[30..34].copy_from_slice(&req[26..30]);
    reply[22] = OUTER_TTL;
    packets::fix_ipv4_checksum(&mut reply);
    reply[34] = 0;
    reply[36..38].copy_from_slice(&[0, 0]);
    let ck = packets::checksum(&reply[34..]);
    reply[36..38].copy_from_slice(&ck.to_be_bytes());
    check_echo_reply(&req, &reply, XDP_TX, e).context("a correct echo reply")?;
    ensure!(check_echo_reply(&req, &reply, XDP_PASS, e).is_err());
    ensure!(check_echo_reply(&req, &req, XDP_TX, e).is_err());
    let edits: [Edit; 5] = [
        ("macs", &|r| r[0] ^= 1),
        ("icmp checksum", &|r| r[37] ^= 1),
        ("icmp type", &|r| r[34] = 8),
        ("ttl", &|r| {
            r[22] = 1;
            packets::fix_ipv4_checksum(r);
        }),
        ("ip checksum", &|r| r[24] ^= 1),
    ];
    for (what, edit) in edits {
        let mut r = reply.clone();
        edit(&mut r);
        ensure!(
            check_echo_reply(&req, &r, XDP_TX, e).is_err(),
            "an echo reply with a broken {what} was accepted"
        );
    }
    Ok(())
}
