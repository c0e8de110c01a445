//! Ring swaps are atomic for packets: while one thread publishes new rings (the daemon's own
//! `publish_ring`), packets on another only ever see a whole old table or a whole new one.
//! And a change rebuilds only the rings of the VIPs it touches.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Result, ensure};
use lb_common::hash::{flow_hash, ring_slot};
use lb_userspace::{config::Protocol::Tcp, reconcile, wire::flow_key};
use libtest_mimic::Trial;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use lb_userspace::testkit::{
    lb::{Ingress, Lb, run_program},
    packets::{self, Tcp as F},
};

use crate::{configs, trial};

/// Backend 198.18.1.(FIRST+i) has index i: a packet's backend decodes to a table version.
///
/// Backends 198.18.1.100..=163: on-link but without neighbour entries, so packets go to the
/// kernel, still encapsulated, which is all this test reads.
const BACKENDS: u32 = 64;
const FIRST: u32 = 100;
const VERSIONS: u32 = 60;
/// The largest ring: writing one takes long enough (about a millisecond) that packets keep
/// landing in the middle of writes, which is where a non-atomic swap would show.
const RING_SIZE: u32 = lb_userspace::config::MAX_RING_SIZE;

/// The load balancer with `configs/ring-swap.toml`, which must say what the constants above say:
/// the first VIP's backends are 198.18.1.FIRST.. in order, at RING_SIZE slots.
fn load(fx0: u32) -> Result<Lb> {
    let lb = configs::load(fx0, configs::RING_SWAP)?;
    let v = &lb.state.vips[0];
    ensure!(
        v.spec.ring_size == RING_SIZE,
        "ring size {}",
        v.spec.ring_size
    );
    let backends: Vec<IpAddr> = v
        .members
        .iter()
        .map(|m| lb.state.backend_address(m.backend_id))
        .collect();
    let want: Vec<IpAddr> = (0..BACKENDS)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, (FIRST + i) as u8)))
        .collect();
    ensure!(backends == want, "backends {backends:?}");
    Ok(lb)
}

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial(
            "ring/packets-during-swaps-see-a-whole-old-or-new-table",
            move || swaps(fx0),
        ),
        trial(
            "ring/a-change-rebuilds-only-the-vips-it-touches",
            move || {
                let mut lb = load(fx0)?;
                let before: Vec<u64> = lb.state.vips.iter().map(|v| v.rebuilds).collect();
                let key = lb.state.vips[0].key;
                lb.state
                    .update_member(&key, "198.18.1.107".parse()?, Some(5), None)?;
                lb.sync()?;
                ensure!(lb.state.vips[0].rebuilds == before[0] + 1);
                ensure!(
                    lb.state.vips[1].rebuilds == before[1],
                    "an untouched VIP was rebuilt"
                );
                Ok(())
            },
        ),
    ]
}

fn swaps(fx0: u32) -> Result<()> {
    let mut lb = load(fx0)?;
    let size = lb.state.vips[0].spec.ring_size;
    let ids: Vec<u32> = (1..=BACKENDS)
        .map(|i| lb.backend_id(IpAddr::V4(Ipv4Addr::new(198, 18, 1, (FIRST + i - 1) as u8))))
        .collect();
    // Version k puts backend index (k + slot) mod 64 in every slot: from one packet's slot and
    // backend the table version it read follows; a table mixing versions would show as a
    // version going backwards between packets.
    let ring = |k: u32| -> Vec<u32> {
        (0..size)
            .map(|s| ids[((k + s) % BACKENDS) as usize])
            .collect()
    };
    let published = AtomicU32::new(0);
    let first = ring(0);
    reconcile::publish_ring(&mut lb.dp, &mut lb.state.vips[0], &first)?;
    let (prog, maps) = lb.dp.split()?;
    let vip_state = &mut lb.state.vips[0];
    let mut seen = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(|| -> Result<()> {
            for k in 1..=VERSIONS {
                reconcile::publish_ring(maps, vip_state, &ring(k))?;
                published.store(k, Ordering::SeqCst);
            }
            Ok(())
        });
        let mut rng = SmallRng::seed_from_u64(7);
        let vip: SocketAddr = "198.18.100.1:80".parse()?;
        let mut last = 0;
        // Keep sending until the writer is done (bounded: it publishes a fixed count).
        for _ in 0..2_000_000 {
            let done = published.load(Ordering::SeqCst);
            let c = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
                rng.random(),
            );
            let input = packets::tcp(c, vip, F::Syn, b"");
            let slot = ring_slot(flow_hash(&flow_key(Tcp, c, vip)?), size);
            let (_, out) = run_program(prog, &input, Ingress::Lo, 0)?;
            ensure!(out.len() >= 34, "not encapsulated");
            let backend = IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33]));
            let version = (index_of_addr(backend) + BACKENDS - slot % BACKENDS) % BACKENDS;
            let after = published.load(Ordering::SeqCst);
            ensure!(
                version >= done && version <= after + 1 && version >= last,
                "packet read table version {version} (published before: {done}, after: {after}, \
                 previous packet: {last}): a torn or stale ring"
            );
            last = version;
            seen.push(version);
            if done == VERSIONS {
                break;
            }
        }
        writer.join().expect("writer thread")?;
        Ok(())
    })?;
    let distinct: std::collections::BTreeSet<u32> = seen.iter().copied().collect();
    // Enough overlap to have exercised swaps under traffic, with room for a busy machine.
    ensure!(
        distinct.len() >= 10,
        "packets overlapped only {} of {VERSIONS} swaps: the test did not exercise concurrency",
        distinct.len()
    );
    Ok(())
}

fn index_of_addr(addr: IpAddr) -> u32 {
    let IpAddr::V4(a) = addr else {
        unreachable!("IPv4 backends")
    };
    a.octets()[3] as u32 - FIRST
}
