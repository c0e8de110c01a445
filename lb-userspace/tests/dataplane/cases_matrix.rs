//! Systematic fixtures: every truncation of each header stack (the program must hand a
//! truncated packet to the kernel untouched, at every length), and forwarding across VIP family ×
//! backend family × TCP flags × ingress interface. Stateless cases share one loaded program.
use std::{
    net::SocketAddr,
    sync::{Mutex, OnceLock},
};

use anyhow::{Context as _, ensure};
use lb_common::stats::Stat;
use lb_userspace::config::Protocol::{Tcp, Udp};
use libtest_mimic::Trial;

use lb_userspace::testkit::{
    lb::{Ingress, Lb, expect_forward, expect_pass_unchanged},
    packets::{self, Tcp as F},
};

use crate::{configs::FIXTURE, trial};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One program for the stateless truncation fixtures (loading one per fixture would dominate).
fn shared(fx0: u32) -> &'static Mutex<Lb> {
    static LB: OnceLock<Mutex<Lb>> = OnceLock::new();
    LB.get_or_init(|| Mutex::new(Lb::with_config(fx0, FIXTURE).expect("load the program")))
}

/// (name, packet, header bytes: Ethernet + IP + L4 header)
fn bases() -> Vec<(&'static str, Vec<u8>, usize)> {
    vec![
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
    ]
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    let mut v = Vec::new();
    for (name, pkt, headers) in bases() {
        // Every length from a bare Ethernet header up to one byte short of the whole packet.
        for len in 14..pkt.len() {
            let input = pkt[..len].to_vec();
            let what = if len < headers { "header" } else { "payload" };
            v.push(trial(
                &format!("truncated/{name}-{what}-at-{len}-bytes"),
                move || {
                    let mut lb = shared(fx0).lock().unwrap_or_else(|e| e.into_inner());
                    let before = lb.stat(Stat::PassUnparsed);
                    expect_pass_unchanged(&mut lb, &input)
                        .with_context(|| format!("{len} bytes"))?;
                    ensure!(
                        lb.stat(Stat::PassUnparsed) == before + 1,
                        "not counted as unparsed"
                    );
                    Ok(())
                },
            ));
        }
    }
    let flags = [
        ("syn", F::Syn),
        ("ack", F::Ack),
        ("fin", F::Fin),
        ("rst", F::Rst),
    ];
    let vips = [
        ("v4-to-v4", "198.18.0.10:41000", "198.18.100.1:80"),
        ("v6-to-v6", "[2001:db8::10]:41000", "[2001:db8:100::1]:80"),
        ("v4-to-v6", "198.18.0.10:41000", "198.18.100.2:80"),
        ("v6-to-v4", "[2001:db8::10]:41000", "[2001:db8:100::2]:80"),
    ];
    for (vname, client, vip) in vips {
        for (fname, f) in flags {
            for (iname, ingress) in [("tx", Ingress::Fx0), ("redirect", Ingress::Lo)] {
                v.push(trial(
                    &format!("matrix/tcp-{vname}-{fname}-{iname}"),
                    move || {
                        let mut lb = Lb::with_config(fx0, FIXTURE)?;
                        let (c, d) = (sa(client), sa(vip));
                        let payload: &[u8] = if matches!(f, F::Ack) { b"data" } else { b"" };
                        expect_forward(&mut lb, Tcp, c, d, &packets::tcp(c, d, f, payload), ingress)
                            .map(drop)
                    },
                ));
            }
        }
    }
    for (name, client, vip) in [
        ("v4", "198.18.0.10:41000", "198.18.100.1:53"),
        ("v6", "[2001:db8::10]:41000", "[2001:db8:100::1]:53"),
    ] {
        for size in [0usize, 1, 512, 1400] {
            v.push(trial(
                &format!("matrix/udp-{name}-{size}-byte-payload"),
                move || {
                    let mut lb = Lb::with_config(fx0, FIXTURE)?;
                    let (c, d) = (sa(client), sa(vip));
                    let p = packets::udp(c, d, &vec![0xA5; size]);
                    expect_forward(&mut lb, Udp, c, d, &p, Ingress::Fx0).map(drop)
                },
            ));
        }
    }
    v
}
