//! The backends' decap program, attached and pinned (see [`super::pinned`]) per interface (by
//! default under `/sys/fs/bpf/sheave/decap/netns-<id>/<iface>`, see [`super::pin_dirs`]), with
//! its VIP map and counters beside the link.
use std::{net::IpAddr, path::Path};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use lb_common::{
    decap::DecapKey,
    stats::{DECAP_STAT_COUNT, DECAP_STAT_NAMES},
};

use super::{AttachMode, objects::DECAP, pinned};
use crate::wire::{family, ip_words, words_ip};

pub const DECAP_PROGRAM: &str = "sheave_decap";

const VIPS_PIN: &str = "vips";
const STATS_PIN: &str = "stats";

/// Attach the decap program to `iface` for `vips` and pin it so it outlives this process.
pub fn attach(iface: &str, vips: &[IpAddr], mode: AttachMode, dir: &Path) -> Result<AttachMode> {
    if vips.is_empty() {
        bail!("give at least one --vip to decapsulate for");
    }
    pinned::attach(DECAP, DECAP_PROGRAM, iface, mode, dir, |ebpf, dir| {
        let mut vip_map: HashMap<MapData, DecapKey, u8> = HashMap::try_from(
            ebpf.take_map("DECAP_VIPS")
                .ok_or_else(|| anyhow!("map DECAP_VIPS missing"))?,
        )?;
        for vip in vips {
            vip_map.insert(decap_key(*vip), 1, 0)?;
        }
        vip_map
            .pin(dir.join(VIPS_PIN))
            .context("pinning the VIP map")?;
        let stats: PerCpuArray<MapData, u64> = PerCpuArray::try_from(
            ebpf.take_map("DECAP_STATS")
                .ok_or_else(|| anyhow!("map DECAP_STATS missing"))?,
        )?;
        stats
            .pin(dir.join(STATS_PIN))
            .context("pinning the counters")?;
        Ok(())
    })
}

/// Detach the decap program and remove its pins.
pub fn detach(dir: &Path) -> Result<()> {
    pinned::detach(dir)
}

/// VIPs and counters of an attached decap program.
pub struct DecapStatus {
    pub vips: Vec<IpAddr>,
    pub counters: Vec<(&'static str, u64)>,
}

pub fn status(dir: &Path) -> Result<DecapStatus> {
    if !dir.join(pinned::LINK_PIN).exists() {
        bail!("no decap program is pinned at {}", dir.display());
    }
    let vips_map: HashMap<MapData, DecapKey, u8> =
        HashMap::try_from(Map::HashMap(MapData::from_pin(dir.join(VIPS_PIN))?))?;
    let mut vips = Vec::new();
    for k in vips_map.keys() {
        let k = k?;
        vips.push(words_ip(&k.addr, k.family));
    }
    vips.sort();
    let stats: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(Map::PerCpuArray(MapData::from_pin(dir.join(STATS_PIN))?))?;
    let mut counters = Vec::new();
    for i in 0..DECAP_STAT_COUNT {
        let v: u64 = stats.get(&i, 0)?.iter().sum();
        counters.push((DECAP_STAT_NAMES[i as usize], v));
    }
    Ok(DecapStatus { vips, counters })
}

fn decap_key(ip: IpAddr) -> DecapKey {
    DecapKey {
        addr: ip_words(ip),
        family: family(ip),
        _pad: [0; 3],
    }
}
