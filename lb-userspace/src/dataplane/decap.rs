//! The backends' decap program: attach it to an interface and leave it there after the CLI exits.
//!
//! The XDP link and the maps are pinned in bpffs under one directory per interface
//! (default `/sys/fs/bpf/sheave/decap/<iface>`); removing the link pin detaches the program.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{HashMap, Map, MapData, PerCpuArray},
    programs::{Xdp, links::FdLink, links::PinnedLink},
};
use lb_common::{
    decap::DecapKey,
    stats::{DECAP_STAT_COUNT, DECAP_STAT_NAMES},
};

use super::{AttachMode, attach, objects::DECAP};
use crate::{
    netinfo,
    wire::{family, ip_words},
};

pub const DECAP_PROGRAM: &str = "sheave_decap";
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/sheave/decap";

const LINK_PIN: &str = "link";
const VIPS_PIN: &str = "vips";
const STATS_PIN: &str = "stats";

/// Where an interface's decap pins live.
pub fn pin_dir(root: &Path, iface: &str) -> PathBuf {
    root.join(iface)
}

/// Attach the decap program to `iface` for `vips` and pin it so it outlives this process.
pub fn attach(iface: &str, vips: &[IpAddr], mode: AttachMode, dir: &Path) -> Result<AttachMode> {
    if vips.is_empty() {
        bail!("give at least one --vip to decapsulate for");
    }
    netinfo::ensure_bpffs(dir)?;
    if dir.join(LINK_PIN).exists() {
        bail!(
            "decap is already attached to {iface} (pinned at {}); detach it first",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ebpf = Ebpf::load(DECAP).context("loading the decap program's maps")?;
    let prog: &mut Xdp = ebpf
        .program_mut(DECAP_PROGRAM)
        .ok_or_else(|| anyhow!("program {DECAP_PROGRAM} missing from the object"))?
        .try_into()?;
    prog.load()
        .context("the kernel refused the decap program")?;
    let attachment = attach::attach(prog, iface, mode)?;
    let used = attachment.mode;

    let result = (|| -> Result<()> {
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
        let stats = ebpf
            .take_map("DECAP_STATS")
            .ok_or_else(|| anyhow!("map DECAP_STATS missing"))?;
        pin_map(&stats, &dir.join(STATS_PIN))?;
        let prog: &mut Xdp = ebpf
            .program_mut(DECAP_PROGRAM)
            .ok_or_else(|| anyhow!("program vanished"))?
            .try_into()?;
        let link = prog.take_link(attachment.link)?;
        let link: FdLink = link.try_into().map_err(|_| {
            anyhow!(
                "this kernel attached XDP through netlink; pinning needs bpf links (Linux 5.9+)"
            )
        })?;
        link.pin(dir.join(LINK_PIN))
            .context("pinning the XDP link")?;
        Ok(())
    })();
    if let Err(e) = result {
        // Leave nothing half-done: the link dies with this process; remove partial pins.
        let _ = remove_pins(dir);
        return Err(e);
    }
    Ok(used)
}

/// Detach the decap program from `iface` and remove its pins.
pub fn detach(dir: &Path) -> Result<()> {
    let link_pin = dir.join(LINK_PIN);
    if !link_pin.exists() {
        bail!("no decap program is pinned at {}", dir.display());
    }
    let link = PinnedLink::from_pin(&link_pin)
        .with_context(|| format!("opening {}", link_pin.display()))?;
    // Unpinning leaves us the only holder of the link; dropping it detaches the program.
    drop(link.unpin().context("unpinning the XDP link")?);
    remove_pins(dir)
}

/// VIPs and counters of an attached decap program.
pub struct DecapStatus {
    pub vips: Vec<IpAddr>,
    pub counters: Vec<(&'static str, u64)>,
}

pub fn status(dir: &Path) -> Result<DecapStatus> {
    if !dir.join(LINK_PIN).exists() {
        bail!("no decap program is pinned at {}", dir.display());
    }
    let vips_map: HashMap<MapData, DecapKey, u8> =
        HashMap::try_from(Map::HashMap(MapData::from_pin(dir.join(VIPS_PIN))?))?;
    let mut vips = Vec::new();
    for k in vips_map.keys() {
        let k = k?;
        vips.push(crate::wire::words_ip(&k.addr, k.family));
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

fn pin_map(map: &Map, path: &Path) -> Result<()> {
    let data = match map {
        Map::PerCpuArray(d) | Map::HashMap(d) => d,
        _ => bail!("unexpected map type"),
    };
    data.pin(path)
        .with_context(|| format!("pinning {}", path.display()))
}

fn remove_pins(dir: &Path) -> Result<()> {
    for name in [LINK_PIN, VIPS_PIN, STATS_PIN] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    // Remove the interface's directory and the parents we created, if now empty.
    let mut d = Some(dir);
    while let Some(cur) = d {
        if std::fs::remove_dir(cur).is_err() {
            break;
        }
        d = cur
            .parent()
            .filter(|p| p.starts_with("/sys/fs/bpf") && *p != Path::new("/sys/fs/bpf"));
    }
    Ok(())
}
