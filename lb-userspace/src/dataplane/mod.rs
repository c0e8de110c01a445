//! The kernel side as userspace sees it: the load balancer's XDP program and typed access to its
//! maps ([`Dataplane`]), and the backends' decap program ([`decap`]).
pub mod attach;
#[cfg(feature = "bench")]
pub mod bench;
pub mod counters;
pub mod decap;
pub mod flow_scan;
pub mod objects;
pub mod owner;
pub mod pin_dirs;
pub mod pinned;
pub mod pins;
pub mod rings;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData},
    programs::Xdp,
};
use lb_common::{
    backend::Backend,
    config::DataplaneConfig,
    flow::{FlowKey, FlowState},
    limits::DEFAULT_RING_SLOTS,
    stats::{Counter, STAT_COUNT},
    vip::{VipKey, VipMeta},
};

pub use attach::AttachMode;

pub const LB_PROGRAM: &str = "sheave_lb";

/// Map sizes chosen at load time.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub flow_table_size: u32,
    pub ring_slots: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flow_table_size: lb_common::limits::DEFAULT_FLOWS,
            ring_slots: DEFAULT_RING_SLOTS,
        }
    }
}

/// The loaded load-balancer program and its maps. Map access is on [`Maps`] (reachable through
/// `Deref`), so the program and the maps can be borrowed apart (see [`Dataplane::split`]).
pub struct Dataplane {
    ebpf: Ebpf,
    maps: Maps,
    attachment: Option<attach::Attachment>,
}

/// Typed access to the load balancer's maps.
pub struct Maps {
    vips: HashMap<MapData, VipKey, VipMeta>,
    backends: Array<MapData, Backend>,
    rings: rings::RingMemory,
    flows: HashMap<MapData, FlowKey, FlowState>,
    config: Array<MapData, DataplaneConfig>,
    pub counters: counters::Counters,
}

impl std::ops::Deref for Dataplane {
    type Target = Maps;
    fn deref(&self) -> &Maps {
        &self.maps
    }
}

impl std::ops::DerefMut for Dataplane {
    fn deref_mut(&mut self) -> &mut Maps {
        &mut self.maps
    }
}

impl Dataplane {
    /// Load (and verify) the program and create its maps. Nothing is attached yet.
    pub fn load(opts: LoadOptions) -> Result<Dataplane> {
        Dataplane::load_with(objects::lb(), opts, &[])
    }

    /// [`Dataplane::load`] from `object`, with some maps pinned at (or reused from) the given
    /// paths.
    fn load_with(
        object: &[u8],
        opts: LoadOptions,
        pins: &[(&str, std::path::PathBuf)],
    ) -> Result<Dataplane> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries("FLOWS", opts.flow_table_size)
            .map_max_entries("RINGS", opts.ring_slots.max(1));
        for (name, path) in pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(object)
            .context("loading the XDP program's maps")?;
        program(&mut ebpf)?
            .load()
            .context("the kernel refused Sheave's XDP program")?;
        let rings = ebpf
            .take_map("RINGS")
            .ok_or_else(|| anyhow!("map RINGS missing from the object"))?;
        let maps = Maps {
            vips: take(&mut ebpf, "VIPS")?,
            backends: take(&mut ebpf, "BACKENDS")?,
            rings: rings::RingMemory::new(rings, opts.ring_slots.max(1))?,
            flows: take(&mut ebpf, "FLOWS")?,
            config: take(&mut ebpf, "CONFIG")?,
            counters: counters::Counters::take(&mut ebpf)?,
        };
        Ok(Dataplane {
            ebpf,
            maps,
            attachment: None,
        })
    }

    /// The program and the maps, borrowed separately (e.g. to run packets on one thread while
    /// another publishes rings).
    pub fn split(&mut self) -> Result<(&mut Xdp, &mut Maps)> {
        Ok((program(&mut self.ebpf)?, &mut self.maps))
    }

    /// The program, e.g. for BPF_PROG_TEST_RUN.
    pub fn program(&mut self) -> Result<&mut Xdp> {
        program(&mut self.ebpf)
    }

    /// Attach to `iface`. Returns the mode actually used.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode> {
        let prog = program(&mut self.ebpf)?;
        let attachment = attach::attach(prog, iface, mode)?;
        let used = attachment.mode;
        self.attachment = Some(attachment);
        Ok(used)
    }

    /// Detach from the interface (if attached). Dropping the Dataplane does the same.
    pub fn detach(&mut self) -> Result<()> {
        if let Some(a) = self.attachment.take() {
            let prog = program(&mut self.ebpf)?;
            prog.detach(a.link)
                .with_context(|| format!("detaching from {}", a.iface))?;
        }
        Ok(())
    }
}

/// The real maps behind the control plane's seam.
impl crate::maps::MapStore for Maps {
    fn set_config(&mut self, cfg: &DataplaneConfig) -> Result<()> {
        self.config.set(0, cfg, 0).context("writing CONFIG")
    }

    fn set_backend(&mut self, id: u32, b: &Backend) -> Result<()> {
        self.backends
            .set(id, b, 0)
            .with_context(|| format!("writing backend {id}"))
    }

    fn write_ring(&mut self, base: u32, ring: &[u32]) -> Result<()> {
        self.rings.write(base, ring)
    }

    fn set_vip(&mut self, key: &VipKey, meta: &VipMeta) -> Result<()> {
        self.vips.insert(key, meta, 0).context("writing VIP")
    }

    fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        match self.vips.remove(key) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(e).context("removing VIP"),
        }
    }

    fn flow(&self, key: &FlowKey) -> Option<FlowState> {
        self.flows.get(key, 0).ok()
    }

    fn scan_flows(&self, f: &mut dyn FnMut(&FlowKey, &FlowState)) -> Result<()> {
        self.scan_flow_table(f)
    }

    fn global_stats(&self) -> Result<[u64; STAT_COUNT as usize]> {
        self.counters.global()
    }

    fn vip_stats(&self, vip_id: u32) -> Result<Counter> {
        self.counters.vip(vip_id)
    }

    fn backend_stats(&self, backend_id: u32) -> Result<Counter> {
        self.counters.backend(backend_id)
    }

    fn handshakes(&self, backend_id: u32) -> Result<lb_common::stats::Handshakes> {
        self.counters.handshakes(backend_id)
    }
}

/// The loaded program's maps, for the control task.
impl crate::maps::MapStore for Dataplane {
    fn set_config(&mut self, cfg: &DataplaneConfig) -> Result<()> {
        self.maps.set_config(cfg)
    }
    fn set_backend(&mut self, id: u32, b: &Backend) -> Result<()> {
        self.maps.set_backend(id, b)
    }
    fn write_ring(&mut self, base: u32, ring: &[u32]) -> Result<()> {
        self.maps.write_ring(base, ring)
    }
    fn set_vip(&mut self, key: &VipKey, meta: &VipMeta) -> Result<()> {
        self.maps.set_vip(key, meta)
    }
    fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        self.maps.remove_vip(key)
    }
    fn flow(&self, key: &FlowKey) -> Option<FlowState> {
        self.maps.flow(key)
    }
    fn scan_flows(&self, f: &mut dyn FnMut(&FlowKey, &FlowState)) -> Result<()> {
        crate::maps::MapStore::scan_flows(&self.maps, f)
    }
    fn global_stats(&self) -> Result<[u64; STAT_COUNT as usize]> {
        self.maps.global_stats()
    }
    fn vip_stats(&self, vip_id: u32) -> Result<Counter> {
        self.maps.vip_stats(vip_id)
    }
    fn backend_stats(&self, backend_id: u32) -> Result<Counter> {
        self.maps.backend_stats(backend_id)
    }
    fn handshakes(&self, backend_id: u32) -> Result<lb_common::stats::Handshakes> {
        self.maps.handshakes(backend_id)
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    ebpf.program_mut(LB_PROGRAM)
        .ok_or_else(|| anyhow!("program {LB_PROGRAM} missing from the object"))?
        .try_into()
        .map_err(|e| anyhow!("{LB_PROGRAM} is not an XDP program: {e}"))
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}
