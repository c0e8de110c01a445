//! Packets to VIPs: each is encapsulated toward the backend the ring picks, for every pairing of
//! VIP family and backend family, TCP and UDP, out of the ingress interface (TX) or another one
//! (REDIRECT).
use std::net::SocketAddr;

use lb_userspace::config::Protocol::{Tcp, Udp};
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, Lb, expect_forward, expect_forward_to},
    packets::{self, Tcp as F},
};

use crate::{configs::FIXTURE, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    let mut v = Vec::new();
    for (name, ingress) in [("redirect", Ingress::Lo), ("tx", Ingress::Fx0)] {
        v.push(trial(&format!("forward/tcp4-syn-{name}"), move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:40000"), sa("198.18.100.1:80"));
            let p = packets::tcp(c, vip, F::Syn, b"");
            expect_forward(&mut lb, Tcp, c, vip, &p, ingress).map(drop)
        }));
        v.push(trial(&format!("forward/tcp6-syn-{name}"), move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("[2001:db8::10]:40000"), sa("[2001:db8:100::1]:80"));
            let p = packets::tcp(c, vip, F::Syn, b"");
            expect_forward(&mut lb, Tcp, c, vip, &p, ingress).map(drop)
        }));
        v.push(trial(&format!("forward/udp4-{name}"), move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:5353"), sa("198.18.100.1:53"));
            let p = packets::udp(c, vip, b"query");
            expect_forward(&mut lb, Udp, c, vip, &p, ingress).map(drop)
        }));
        v.push(trial(&format!("forward/udp6-{name}"), move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("[2001:db8::10]:5353"), sa("[2001:db8:100::1]:53"));
            let p = packets::udp(c, vip, b"query");
            expect_forward(&mut lb, Udp, c, vip, &p, ingress).map(drop)
        }));
    }
    v.push(trial("forward/tcp4-ack-with-payload", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40001"), sa("198.18.100.1:80"));
        let p = packets::tcp(c, vip, F::Ack, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/tcp6-fin", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("[2001:db8::10]:40002"), sa("[2001:db8:100::1]:80"));
        let p = packets::tcp(c, vip, F::Fin, b"");
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/tcp4-rst", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40003"), sa("198.18.100.1:80"));
        let p = packets::tcp(c, vip, F::Rst, b"");
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/ipv4-vip-to-ipv6-backend", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40004"), sa("198.18.100.2:80"));
        let p = packets::tcp(c, vip, F::Syn, b"");
        let b = expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0)?;
        anyhow::ensure!(b.is_ipv6(), "backend {b}");
        Ok(())
    }));
    v.push(trial("forward/ipv6-vip-to-ipv4-backend", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("[2001:db8::10]:40005"), sa("[2001:db8:100::2]:80"));
        let p = packets::tcp(c, vip, F::Syn, b"");
        let b = expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0)?;
        anyhow::ensure!(b.is_ipv4(), "backend {b}");
        Ok(())
    }));
    v.push(trial("forward/ipv4-with-options", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40006"), sa("198.18.100.1:80"));
        // Rebuild a SYN with 8 bytes of IPv4 options (two NOPs, then End of Options padding).
        let plain = packets::tcp(c, vip, F::Syn, b"");
        let mut p = plain[..34].to_vec();
        p.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&plain[34..]);
        p[14] = 0x47; // ihl = 7 words
        let tot = u16::from_be_bytes([p[16], p[17]]) + 8;
        p[16..18].copy_from_slice(&tot.to_be_bytes());
        packets::fix_ipv4_checksum(&mut p);
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial(
        "forward/ethernet-padding-kept-outside-ip-length",
        move || {
            let mut lb = Lb::with_config(fx0, FIXTURE)?;
            let (c, vip) = (sa("198.18.0.10:40007"), sa("198.18.100.1:53"));
            // A 46-byte IPv4/UDP packet padded to the 60-byte Ethernet minimum.
            let mut p = packets::udp(c, vip, b"q");
            p.resize(60, 0);
            expect_forward(&mut lb, Udp, c, vip, &p, Ingress::Fx0).map(drop)
        },
    ));
    v.push(trial("forward/udp4-zero-checksum", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:5354"), sa("198.18.100.1:53"));
        let mut p = packets::udp(c, vip, b"no checksum");
        p[40] = 0;
        p[41] = 0;
        expect_forward(&mut lb, Udp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/ttl-1-is-not-a-router-hop", move || {
        // DSR keeps the client's packet intact; the outer header has its own TTL.
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40008"), sa("198.18.100.1:80"));
        let mut p = packets::tcp(c, vip, F::Syn, b"");
        p[22] = 1;
        packets::fix_ipv4_checksum(&mut p);
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/dscp-copied-to-outer-header", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
        let (c, vip) = (sa("198.18.0.10:40009"), sa("198.18.100.1:80"));
        let mut p = packets::tcp(c, vip, F::Syn, b"");
        p[15] = 0xB8; // EF
        packets::fix_ipv4_checksum(&mut p);
        expect_forward(&mut lb, Tcp, c, vip, &p, Ingress::Fx0).map(drop)
    }));
    v.push(trial("forward/outer-source-varies-per-flow", move || {
        let mut lb = Lb::with_config(fx0, FIXTURE)?;
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
