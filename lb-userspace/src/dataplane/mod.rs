//! The kernel side as userspace sees it: the load balancer's XDP program and typed access to its
//! maps ([`Dataplane`]), and the backends' decap program ([`decap`]).
pub mod attach;
#[cfg(feature = "bench")]
pub mod bench;
pub mod decap;
pub mod flow_scan;
pub mod objects;
pub mod pinned;
pub mod pins;
pub mod rings;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
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
    vip_stats: PerCpuArray<MapData, Counter>,
    backend_stats: PerCpuArray<MapData, Counter>,
    global_stats: PerCpuArray<MapData, u64>,
    /// VIP addresses whose address entries are written (see `sync_addresses`).
    addresses: std::collections::BTreeSet<std::net::IpAddr>,
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
            vip_stats: take(&mut ebpf, "VIP_STATS")?,
            backend_stats: take(&mut ebpf, "BACKEND_STATS")?,
            global_stats: take(&mut ebpf, "GLOBAL_STATS")?,
            addresses: Default::default(),
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

impl Maps {
    pub fn set_config(&mut self, cfg: &DataplaneConfig) -> Result<()> {
        self.config.set(0, cfg, 0).context("writing CONFIG")
    }

    pub fn set_backend(&mut self, id: u32, b: &Backend) -> Result<()> {
        self.backends
            .set(id, b, 0)
            .with_context(|| format!("writing backend {id}"))
    }

    pub fn write_ring(&mut self, base: u32, ring: &[u32]) -> Result<()> {
        self.rings.write(base, ring)
    }

    /// Ring slots as the data plane sees them.
    pub fn read_ring(&self, base: u32, len: usize) -> Vec<u32> {
        self.rings.read(base, len)
    }

    pub fn set_vip(&mut self, key: &VipKey, meta: &VipMeta) -> Result<()> {
        self.vips.insert(key, meta, 0).context("writing VIP")
    }

    /// Make the address entries (ICMP echo answered, fragments dropped) exactly `want`.
    pub fn sync_addresses(
        &mut self,
        want: &std::collections::BTreeSet<std::net::IpAddr>,
    ) -> Result<()> {
        let key = |a: &std::net::IpAddr| VipKey {
            addr: crate::wire::ip_words(*a),
            port: 0,
            proto: lb_common::vip::VIP_ADDRESS_PROTO,
            family: crate::wire::family(*a),
        };
        let value = VipMeta {
            flags: lb_common::vip::VIP_F_ADDRESS,
            ..VipMeta::default()
        };
        for a in want.difference(&self.addresses.clone()) {
            self.vips
                .insert(key(a), value, 0)
                .context("writing a VIP address entry")?;
            self.addresses.insert(*a);
        }
        for a in self.addresses.clone().difference(want) {
            let _ = self.vips.remove(&key(a));
            self.addresses.remove(a);
        }
        Ok(())
    }

    pub fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        self.vips.remove(key).context("removing VIP")
    }

    /// The flow table's entry for a flow, if any.
    pub fn flow(&self, key: &FlowKey) -> Option<FlowState> {
        self.flows.get(key, 0).ok()
    }

    /// Outcome and flow-table counters summed over CPUs, indexed by `Stat`.
    pub fn global_stats(&self) -> Result<[u64; STAT_COUNT as usize]> {
        let mut out = [0u64; STAT_COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self.global_stats.get(&(i as u32), 0)?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    pub fn vip_stats(&self, vip_id: u32) -> Result<Counter> {
        sum_counters(&self.vip_stats, vip_id)
    }

    pub fn backend_stats(&self, backend_id: u32) -> Result<Counter> {
        sum_counters(&self.backend_stats, backend_id)
    }
}

fn sum_counters(map: &PerCpuArray<MapData, Counter>, index: u32) -> Result<Counter> {
    let per_cpu = map.get(&index, 0)?;
    Ok(per_cpu.iter().fold(Counter::default(), |acc, c| Counter {
        packets: acc.packets + c.packets,
        bytes: acc.bytes + c.bytes,
        new_flows: acc.new_flows + c.new_flows,
    }))
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
