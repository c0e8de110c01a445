//! The data plane's per-CPU counter maps, summed over CPUs at read time. A second handle on the
//! same maps ([`Counters::duplicate`]) lets `/metrics` read them off the control task.
use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result};
use aya::maps::{IterableMap as _, MapData, PerCpuArray};
use lb_common::stats::{Counter, Handshakes, STAT_COUNT};

pub struct Counters {
    vip_stats: PerCpuArray<MapData, Counter>,
    backend_stats: PerCpuArray<MapData, Counter>,
    global_stats: PerCpuArray<MapData, u64>,
    handshakes: PerCpuArray<MapData, Handshakes>,
}

impl Counters {
    pub(super) fn take(ebpf: &mut aya::Ebpf) -> Result<Counters> {
        Ok(Counters {
            vip_stats: super::take(ebpf, "VIP_STATS")?,
            backend_stats: super::take(ebpf, "BACKEND_STATS")?,
            global_stats: super::take(ebpf, "GLOBAL_STATS")?,
            handshakes: super::take(ebpf, "HANDSHAKES")?,
        })
    }

    /// New handles (duplicated file descriptors) on the same maps.
    pub fn duplicate(&self) -> Result<Counters> {
        fn dup<V: aya::Pod>(m: &PerCpuArray<MapData, V>) -> Result<PerCpuArray<MapData, V>> {
            let fd = m.map().fd().as_fd().try_clone_to_owned()?;
            let data = MapData::from_fd(fd).context("a second handle on a counter map")?;
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
                .context("a counter map of an unexpected type")
        }
        Ok(Counters {
            vip_stats: dup(&self.vip_stats)?,
            backend_stats: dup(&self.backend_stats)?,
            global_stats: dup(&self.global_stats)?,
            handshakes: dup(&self.handshakes)?,
        })
    }

    /// Outcome and flow-table counters, indexed by `Stat`.
    pub fn global(&self) -> Result<[u64; STAT_COUNT as usize]> {
        let mut out = [0u64; STAT_COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self.global_stats.get(&(i as u32), 0)?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    pub fn vip(&self, vip_id: u32) -> Result<Counter> {
        sum(&self.vip_stats, vip_id)
    }

    pub fn backend(&self, backend_id: u32) -> Result<Counter> {
        sum(&self.backend_stats, backend_id)
    }

    /// Connection attempts of a backend and how they went.
    pub fn handshakes(&self, backend_id: u32) -> Result<Handshakes> {
        let per_cpu = self.handshakes.get(&backend_id, 0)?;
        Ok(per_cpu
            .iter()
            .fold(Handshakes::default(), |a, h| Handshakes {
                attempts: a.attempts + h.attempts,
                answered: a.answered + h.answered,
                retransmitted: a.retransmitted + h.retransmitted,
            }))
    }
}

fn sum(map: &PerCpuArray<MapData, Counter>, index: u32) -> Result<Counter> {
    let per_cpu = map.get(&index, 0)?;
    Ok(per_cpu.iter().fold(Counter::default(), |acc, c| Counter {
        packets: acc.packets + c.packets,
        bytes: acc.bytes + c.bytes,
        new_flows: acc.new_flows + c.new_flows,
    }))
}
