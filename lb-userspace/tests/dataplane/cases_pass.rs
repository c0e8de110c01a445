//! What the program must not forward: non-VIP traffic and non-IP frames pass untouched, packets it
//! cannot parse pass untouched (the kernel validates them), and VIP packets it cannot deliver are
//! passed to the kernel or dropped, each with its counter.
use std::net::{IpAddr, SocketAddr};

use anyhow::ensure;
use lb_common::stats::Stat;
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, Lb, XDP_DROP, XDP_PASS, XDP_TX, expect_pass_unchanged, same_bytes},
    netns::{CLIENT_MAC, FX_MTU, LB_MAC},
    packets::{self, Tcp as F},
};

use crate::{configs::FIXTURE, trial};

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

/// A trial that checks `input` passes unchanged and lands in counter `stat`.
fn passes(fx0: u32, name: &str, stat: Stat, input: impl Fn() -> Vec<u8> + Send + 'static) -> Trial {
    trial(&format!("pass/{name}"), move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        expect_pass_unchanged(&mut lb, &input())?;
        ensure!(lb.stat(stat) == 1, "{stat:?} = {}", lb.stat(stat));
        Ok(())
    })
}

/// A trial that checks `input` is dropped and lands in counter `stat`.
fn drops(fx0: u32, name: &str, stat: Stat, input: impl Fn() -> Vec<u8> + Send + 'static) -> Trial {
    trial(&format!("drop/{name}"), move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (action, _) = lb.run(&input(), Ingress::Lo)?;
        ensure!(action == XDP_DROP, "action {action}");
        ensure!(lb.stat(stat) == 1, "{stat:?} = {}", lb.stat(stat));
        Ok(())
    })
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    let mut v = vec![
        passes(fx0, "ipv4-not-a-vip", Stat::PassNoVip, || {
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.9:80"), F::Syn, b"")
        }),
        passes(fx0, "ipv4-vip-address-other-port", Stat::PassNoVip, || {
            packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.1:81"), F::Syn, b"")
        }),
        passes(fx0, "ipv4-vip-port-other-protocol", Stat::PassNoVip, || {
            packets::udp(sa("198.18.0.10:40000"), sa("198.18.100.1:80"), b"x")
        }),
        passes(fx0, "ipv6-not-a-vip", Stat::PassNoVip, || {
            packets::tcp(
                sa("[2001:db8::10]:1"),
                sa("[2001:db8:100::9]:80"),
                F::Syn,
                b"",
            )
        }),
        passes(
            fx0,
            "icmp-echo-to-a-non-vip-address",
            Stat::PassNoVip,
            || {
                packets::icmp_echo(
                    "198.18.0.10".parse().unwrap(),
                    "198.18.100.9".parse().unwrap(),
                )
            },
        ),
        passes(
            fx0,
            "icmpv6-echo-to-a-non-vip-address",
            Stat::PassNoVip,
            || {
                packets::icmp_echo(
                    "2001:db8::10".parse().unwrap(),
                    "2001:db8:100::9".parse().unwrap(),
                )
            },
        ),
        passes(fx0, "arp", Stat::PassNotIp, || {
            let mut p = Vec::new();
            p.extend_from_slice(&[0xFF; 6]);
            p.extend_from_slice(&CLIENT_MAC);
            p.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            p.extend_from_slice(&CLIENT_MAC);
            p.extend_from_slice(&[198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
            p.resize(60, 0);
            p
        }),
        passes(fx0, "lldp", Stat::PassNotIp, || {
            let mut p = vec![0x01, 0x80, 0xC2, 0, 0, 0x0E];
            p.extend_from_slice(&CLIENT_MAC);
            p.extend_from_slice(&[0x88, 0xCC]);
            p.resize(60, 0);
            p
        }),
        passes(
            fx0,
            "vlan-tagged-frame-is-not-parsed-yet",
            Stat::PassNotIp,
            || {
                let plain = syn4();
                let mut p = plain[..12].to_vec();
                p.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
                p.extend_from_slice(&plain[12..]);
                p
            },
        ),
        passes(fx0, "ethernet-header-only", Stat::PassUnparsed, || {
            syn4()[..14].to_vec()
        }),
        passes(fx0, "truncated-ipv4-header", Stat::PassUnparsed, || {
            syn4()[..24].to_vec()
        }),
        passes(fx0, "truncated-tcp-header", Stat::PassUnparsed, || {
            // IP length claims the whole segment but only 10 bytes of TCP arrived.
            syn4()[..44].to_vec()
        }),
        passes(
            fx0,
            "ipv4-total-length-beyond-packet",
            Stat::PassUnparsed,
            || {
                let mut p = syn4();
                p[16..18].copy_from_slice(&200u16.to_be_bytes());
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        passes(
            fx0,
            "ipv4-total-length-below-header",
            Stat::PassUnparsed,
            || {
                let mut p = syn4();
                p[16..18].copy_from_slice(&12u16.to_be_bytes());
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        passes(fx0, "ipv4-ihl-below-5", Stat::PassUnparsed, || {
            let mut p = syn4();
            p[14] = 0x44;
            p
        }),
        passes(
            fx0,
            "ipv4-total-length-too-short-for-tcp",
            Stat::PassUnparsed,
            || {
                // The IP length ends inside the TCP header (the rest is trailing junk).
                let mut p = syn4();
                p[16..18].copy_from_slice(&30u16.to_be_bytes());
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        passes(fx0, "ipv4-version-field-wrong", Stat::PassUnparsed, || {
            let mut p = syn4();
            p[14] = 0x65;
            p
        }),
        passes(fx0, "truncated-ipv6-header", Stat::PassUnparsed, || {
            syn6()[..40].to_vec()
        }),
        passes(
            fx0,
            "ipv6-payload-length-beyond-packet",
            Stat::PassUnparsed,
            || {
                let mut p = syn6();
                p[18..20].copy_from_slice(&300u16.to_be_bytes());
                p
            },
        ),
        passes(
            fx0,
            "ipv4-fragment-to-a-non-vip-address",
            Stat::PassFragment,
            || {
                let mut p = packets::tcp(sa("198.18.0.10:1"), sa("198.18.100.9:80"), F::Syn, b"");
                p[20] |= 0x20;
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        passes(
            fx0,
            "ipv6-too-many-extension-headers",
            Stat::PassNoVip,
            || packets::with_ipv6_ext_headers(&syn6(), 5),
        ),
        passes(
            fx0,
            "ipv6-fragment-to-a-non-vip-address",
            Stat::PassFragment,
            || {
                let plain = packets::tcp(
                    sa("[2001:db8::10]:1"),
                    sa("[2001:db8:100::9]:80"),
                    F::Syn,
                    b"",
                );
                let mut p = plain[..54].to_vec();
                p[20] = 44;
                p.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 42]);
                p.extend_from_slice(&plain[54..]);
                let len = u16::from_be_bytes([p[18], p[19]]) + 8;
                p[18..20].copy_from_slice(&len.to_be_bytes());
                p
            },
        ),
        drops(
            fx0,
            "ipv4-first-fragment-to-a-vip",
            Stat::DropFragment,
            || {
                let mut p = syn4();
                p[20] |= 0x20; // more fragments
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        drops(
            fx0,
            "ipv4-later-fragment-to-a-vip",
            Stat::DropFragment,
            || {
                let mut p = syn4();
                p[20..22].copy_from_slice(&185u16.to_be_bytes()); // offset 1480
                packets::fix_ipv4_checksum(&mut p);
                p
            },
        ),
        drops(fx0, "ipv6-fragment-to-a-vip", Stat::DropFragment, || {
            // Insert a fragment header (next header TCP, offset 0, more fragments).
            let plain = syn6();
            let mut p = plain[..54].to_vec();
            p[20] = 44;
            p.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 42]);
            p.extend_from_slice(&plain[54..]);
            let len = u16::from_be_bytes([p[18], p[19]]) + 8;
            p[18..20].copy_from_slice(&len.to_be_bytes());
            p
        }),
    ];

    v.push(trial(
        "deliver/no-neighbour-goes-to-kernel-encapsulated",
        move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.3:80"));
            let input = packets::tcp(c, vip, F::Syn, b"");
            let (action, out) = lb.run(&input, Ingress::Fx0)?;
            ensure!(action == XDP_PASS, "action {action}");
            // Encapsulated, MACs still the client's → the kernel forwards it and resolves the
            // neighbour on the way.
            let pick = lb.simulate(lb_userspace::config::Protocol::Tcp, c, vip)?;
            let backend: IpAddr = "198.18.1.99".parse()?;
            let want = packets::encapsulated(
                &input,
                CLIENT_MAC,
                LB_MAC,
                lb.outer_src(backend, pick.hash),
                backend,
                pick.hash,
            );
            same_bytes(&out, &want)?;
            ensure!(lb.stat(Stat::PassNoNeigh) == 1);
            Ok(())
        },
    ));
    v.push(trial("deliver/no-route-drops", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let input = packets::tcp(sa("198.18.0.10:40000"), sa("198.18.100.4:80"), F::Syn, b"");
        let (action, _) = lb.run(&input, Ingress::Fx0)?;
        ensure!(action == XDP_DROP, "action {action}");
        ensure!(lb.stat(Stat::DropNoRoute) == 1);
        Ok(())
    }));
    v.push(trial(
        "deliver/too-big-answers-fragmentation-needed",
        move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.1:80"));
            // Inner packet exactly the MTU: 20 more bytes of outer header do not fit.
            let input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; FX_MTU - 40]);
            ensure!(input[20] & 0x40 != 0, "the fixture needs DF set");
            let (action, out) = lb.run(&input, Ingress::Fx0)?;
            ensure!(action == XDP_TX, "action {action}");
            same_bytes(&out, &too_big_reply(&input, (FX_MTU - 20) as u32))?;
            ensure!(lb.stat(Stat::TxIcmpTooBig) == 1);
            Ok(())
        },
    ));
    v.push(trial(
        "deliver/too-big-answers-packet-too-big-v6",
        move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("[2001:db8::10]:40000"), sa("[2001:db8:100::1]:80"));
            let input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; FX_MTU - 60]);
            let (action, out) = lb.run(&input, Ingress::Fx0)?;
            ensure!(action == XDP_TX, "action {action}");
            same_bytes(&out, &too_big_reply(&input, (FX_MTU - 40) as u32))?;
            Ok(())
        },
    ));
    v.push(trial("deliver/too-big-without-df-drops", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.1:80"));
        let mut input = packets::tcp(c, vip, F::Ack, &vec![0x55u8; FX_MTU - 40]);
        input[20] &= !0x40;
        packets::fix_ipv4_checksum(&mut input);
        let (action, _) = lb.run(&input, Ingress::Fx0)?;
        ensure!(action == XDP_DROP, "action {action}");
        ensure!(lb.stat(Stat::DropTooBig) == 1);
        Ok(())
    }));
    v
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
