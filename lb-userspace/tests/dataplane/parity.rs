//! Hash parity: for many random flows the kernel picks exactly the backend (and hash) the
//! userspace simulator predicts, at the production ring size.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Result, ensure};
use lb_userspace::config::Protocol::{Tcp, Udp};
use libtest_mimic::Trial;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use lb_userspace::testkit::{
    lb::Ingress,
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

pub const FLOWS: usize = 10_000;

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![trial(
        "parity/kernel-and-simulator-agree-on-10000-flows",
        move || {
            let mut lb = configs::load(fx0, configs::PARITY)?;
            let seed = 0x5EED_0001;
            let mut rng = SmallRng::seed_from_u64(seed);
            for i in 0..FLOWS {
                let v6 = i % 2 == 1;
                let (c, vip, input) = if v6 {
                    let c = SocketAddr::new(
                        IpAddr::V6(Ipv6Addr::from(rng.random::<u128>())),
                        rng.random(),
                    );
                    let vip: SocketAddr = "[2001:db8:100::1]:443".parse()?;
                    (c, vip, packets::udp(c, vip, b"x"))
                } else {
                    let c = SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
                        rng.random(),
                    );
                    let vip: SocketAddr = "198.18.100.1:80".parse()?;
                    (c, vip, packets::tcp(c, vip, F::Syn, b""))
                };
                let want = lb.simulate(if v6 { Udp } else { Tcp }, c, vip)?;
                let (_, out) = lb.run(&input, Ingress::Fx0)?;
                check(
                    &out,
                    v6,
                    want.backend,
                    lb.outer_src(want.backend, want.hash),
                    want.hash,
                )
                .map_err(|e| e.context(format!("flow #{i} {c} -> {vip} (seed {seed:#x})")))?;
            }
            Ok(())
        },
    )]
}

/// The outer header names the predicted backend and carries the predicted hash: in the outer
/// source's host bits, and for IPv6 also in the flow label.
fn check(out: &[u8], v6: bool, backend: IpAddr, outer_src: IpAddr, hash: u32) -> Result<()> {
    let (src, dst) = if v6 {
        ensure!(out.len() >= 54, "no outer IPv6 header");
        let label = u32::from_be_bytes(out[14..18].try_into()?) & 0xF_FFFF;
        ensure!(
            label == hash & 0xF_FFFF,
            "flow label {label:#x}, hash {hash:#x}"
        );
        (
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&out[22..38])?)),
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&out[38..54])?)),
        )
    } else {
        ensure!(out.len() >= 34, "no outer IPv4 header");
        (
            IpAddr::V4(Ipv4Addr::new(out[26], out[27], out[28], out[29])),
            IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33])),
        )
    };
    ensure!(dst == backend, "kernel chose {dst}, simulator {backend}");
    ensure!(
        src == outer_src,
        "outer source {src}, simulator {outer_src}"
    );
    Ok(())
}
