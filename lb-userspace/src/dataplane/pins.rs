//! The data plane outliving `sheaved`: the maps and the XDP link pinned in one bpffs directory.
//! A starting daemon that finds them checks the layout version (kept in a pinned `LAYOUT` map)
//! and every map's shape, adopts the maps (flow table, rings, counters and all), and swaps its
//! freshly loaded program into the pinned link with `bpf_link_update`: packets never stop.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aya::{
    maps::{Array, MapData, MapInfo},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use lb_common::{
    backend::{BACKEND_F_DOWN, BACKEND_F_VALID, Backend},
    flow::{FlowKey, FlowState},
    limits::MAP_LAYOUT_VERSION,
    stats::Counter,
    vip::{VIP_ADDRESS_PROTO, VipKey, VipMeta},
};

use super::{AttachMode, Dataplane, LoadOptions, attach};
use crate::{netinfo, wire::words_ip};

/// Maps that carry state across daemons. NEXTHOPS and FLOOD are caches and start afresh.
pub const PINNED_MAPS: [&str; 9] = [
    "VIPS",
    "BACKENDS",
    "RINGS",
    "FLOWS",
    "CONFIG",
    "VIP_STATS",
    "BACKEND_STATS",
    "GLOBAL_STATS",
    "HANDSHAKES",
];
const LAYOUT_PIN: &str = "LAYOUT";
const LINK_PIN: &str = "link";

/// What the kernel maps held when a daemon adopted them: the ids and ring halves in use, so the
/// new desired state keeps them (flows name backend ids; packets read the active ring half).
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    pub backends: Vec<(u32, IpAddr)>,
    /// Backends the data plane had marked down (health or operator).
    pub down: Vec<IpAddr>,
    pub vips: Vec<(VipKey, VipMeta)>,
    /// Addresses with an address entry (see `VIP_ADDRESS_PROTO`), so later syncs remove them.
    pub addresses: Vec<IpAddr>,
    pub flows: u64,
}

/// Whether `dir` holds a data plane to adopt; an error for a foreign or half-made one.
pub fn inspect(dir: &Path) -> Result<bool> {
    let layout = dir.join(LAYOUT_PIN);
    if !layout.exists() {
        let leftovers: Vec<&str> = PINNED_MAPS
            .iter()
            .copied()
            .chain([LINK_PIN])
            .filter(|n| dir.join(n).exists())
            .collect();
        ensure!(
            leftovers.is_empty(),
            "{} holds pins ({}) but no layout version: not a complete Sheave data plane; remove it \
             with `sheave teardown --pin-dir {}`",
            dir.display(),
            leftovers.join(", "),
            dir.display()
        );
        return Ok(false);
    }
    let map =
        MapData::from_pin(&layout).with_context(|| format!("opening {}", layout.display()))?;
    let arr: Array<MapData, u32> = Array::try_from(aya::maps::Map::Array(map))?;
    let version = arr.get(&0, 0).context("reading the layout version")?;
    if version != MAP_LAYOUT_VERSION {
        bail!(
            "the data plane pinned at {} has map layout v{version}, this sheaved uses \
             v{MAP_LAYOUT_VERSION}: adopting it would corrupt it. Run `sheave teardown --pin-dir \
             {}` (drops established flows) or run a sheaved of layout v{version}",
            dir.display(),
            dir.display()
        );
    }
    Ok(true)
}

/// `LAYOUT[1]`: how the pinned link attached (a restarted daemon reports the same mode).
const MODE_NATIVE: u32 = 1;
const MODE_GENERIC: u32 = 2;

fn layout_map(dir: &Path) -> Result<Array<MapData, u32>> {
    let map = MapData::from_pin(dir.join(LAYOUT_PIN)).context("opening LAYOUT")?;
    Ok(Array::try_from(aya::maps::Map::Array(map))?)
}

/// Remember the attach mode next to the layout version.
pub fn write_mode(dir: &Path, mode: AttachMode) -> Result<()> {
    let v = match mode {
        AttachMode::Generic => MODE_GENERIC,
        _ => MODE_NATIVE,
    };
    layout_map(dir)?
        .set(1, v, 0)
        .context("writing the attach mode")?;
    Ok(())
}

/// The attach mode of the pinned link, if recorded.
pub fn read_mode(dir: &Path) -> Option<AttachMode> {
    match layout_map(dir).ok()?.get(&1, 0).ok()? {
        MODE_NATIVE => Some(AttachMode::Native),
        MODE_GENERIC => Some(AttachMode::Generic),
        _ => None,
    }
}

/// Record the layout version in `dir` (a fresh data plane).
pub fn write_layout(dir: &Path) -> Result<()> {
    // [0]: layout version, [1]: attach mode.
    let mut arr: Array<MapData, u32> = Array::create(2, 0).context("creating LAYOUT")?;
    arr.set(0, MAP_LAYOUT_VERSION, 0)?;
    arr.pin(dir.join(LAYOUT_PIN))
        .context("pinning the layout version")?;
    Ok(())
}

/// Every pinned map must have the shape this daemon expects: the layout version covers types,
/// this covers sizes chosen at load time (flow table, ring slots), which cannot change in place.
pub fn verify_shapes(dir: &Path, opts: &LoadOptions) -> Result<()> {
    use std::mem::size_of;
    let expect: [(&str, u32, u32, Option<u32>); 9] = [
        (
            "VIPS",
            size_of::<VipKey>() as u32,
            size_of::<VipMeta>() as u32,
            None,
        ),
        ("BACKENDS", 4, size_of::<Backend>() as u32, None),
        ("RINGS", 4, 4, Some(opts.ring_slots.max(1))),
        (
            "FLOWS",
            size_of::<FlowKey>() as u32,
            size_of::<FlowState>() as u32,
            Some(opts.flow_table_size),
        ),
        (
            "CONFIG",
            4,
            size_of::<lb_common::config::DataplaneConfig>() as u32,
            None,
        ),
        // Per-CPU maps report one CPU's value size.
        ("VIP_STATS", 4, size_of::<Counter>() as u32, None),
        ("BACKEND_STATS", 4, size_of::<Counter>() as u32, None),
        (
            "HANDSHAKES",
            4,
            size_of::<lb_common::stats::Handshakes>() as u32,
            None,
        ),
        ("GLOBAL_STATS", 4, 8, Some(lb_common::stats::STAT_SLOTS)),
    ];
    for (name, key, value, entries) in expect {
        let info = MapInfo::from_pin(dir.join(name))
            .with_context(|| format!("reading pinned map {name}"))?;
        ensure!(
            info.key_size() == key && info.value_size() == value,
            "pinned map {name} has {}-byte keys and {}-byte values, expected {key} and {value}: \
             a different layout; run `sheave teardown --pin-dir {}`",
            info.key_size(),
            info.value_size(),
            dir.display()
        );
        if let Some(n) = entries {
            ensure!(
                info.max_entries() == n,
                "pinned map {name} has {} entries but the configuration asks for {n}; sizes cannot \
                 change under a running data plane: restore the old size, or `sheave teardown` \
                 and start afresh (drops established flows)",
                info.max_entries()
            );
        }
    }
    Ok(())
}

impl Dataplane {
    /// Load with the state-carrying maps pinned in `dir` (reused when there, created and pinned
    /// otherwise). Returns what the maps held when they were adopted.
    pub fn load_pinned(opts: LoadOptions, dir: &Path) -> Result<(Dataplane, Option<Adopted>)> {
        netinfo::ensure_bpffs(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let adopting = inspect(dir)?;
        if adopting {
            verify_shapes(dir, &opts)?;
        }
        let paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|n| (*n, dir.join(n))).collect();
        let dp = Dataplane::load_with(super::objects::lb(), opts, &paths)?;
        if !adopting {
            write_layout(dir)?;
            return Ok((dp, None));
        }
        let adopted = dp.adopted()?;
        Ok((dp, Some(adopted)))
    }

    /// The ids, VIPs and flows the adopted maps hold.
    fn adopted(&self) -> Result<Adopted> {
        let mut a = Adopted::default();
        for id in 0..lb_common::limits::MAX_BACKENDS {
            let b = self.backends.get(&id, 0)?;
            if b.flags & BACKEND_F_VALID != 0 {
                a.backends.push((id, words_ip(&b.addr, b.family)));
                if b.flags & BACKEND_F_DOWN != 0 {
                    a.down.push(words_ip(&b.addr, b.family));
                }
            }
        }
        for item in self.vips.iter() {
            let (k, v) = item?;
            if k.proto == VIP_ADDRESS_PROTO {
                a.addresses.push(words_ip(&k.addr, k.family));
            } else {
                a.vips.push((k, v));
            }
        }
        self.scan_flow_table(&mut |_, _| a.flows += 1)?;
        Ok(a)
    }

    /// Attach through the link pinned in `dir` (replacing its program atomically) or, without
    /// one, attach afresh and pin the link. Returns the mode used (`None`: the pinned link's,
    /// unchanged).
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: AttachMode,
        dir: &Path,
    ) -> Result<Option<AttachMode>> {
        let pin = dir.join(LINK_PIN);
        let prog = super::program(&mut self.ebpf)?;
        if pin.exists() {
            let pinned = PinnedLink::from_pin(&pin)
                .with_context(|| format!("opening the pinned XDP link {}", pin.display()))?;
            let link = XdpLink::try_from(FdLink::from(pinned))
                .map_err(|e| anyhow!("{} is not an XDP link: {e}", pin.display()))?;
            prog.attach_to_link(link)
                .context("replacing the program in the pinned XDP link (bpf_link_update)")?;
            return Ok(None);
        }
        let a = attach::attach(prog, iface, mode)?;
        write_mode(dir, a.mode)?;
        let link = prog.take_link(a.link)?;
        let link: FdLink = link.try_into().map_err(|_| {
            anyhow!(
                "this kernel attached XDP through netlink; pinning needs bpf links (Linux 5.9+)"
            )
        })?;
        link.pin(&pin).context("pinning the XDP link")?;
        Ok(Some(a.mode))
    }
}
