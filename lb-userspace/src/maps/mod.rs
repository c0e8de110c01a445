//! The seam between the control plane and the kernel's maps: the reconciler and the control
//! task read and write the data plane only through [`MapStore`]. In the daemon it is the real
//! maps ([`crate::dataplane::Dataplane`]); in the replay tests a `recorder::Recorder` that keeps every
//! write in order, so the control plane's logic is tested without root, in milliseconds.
use anyhow::Result;
use lb_common::{
    backend::Backend,
    config::DataplaneConfig,
    flow::{FlowKey, FlowState},
    stats::{Counter, Handshakes, STAT_COUNT},
    vip::{VipKey, VipMeta},
};

/// What the control plane does to and reads from the data plane's maps.
pub trait MapStore {
    /// `CONFIG[0]`: host-wide settings.
    fn set_config(&mut self, cfg: &DataplaneConfig) -> Result<()>;
    /// `BACKENDS[id]`.
    fn set_backend(&mut self, id: u32, b: &Backend) -> Result<()>;
    /// `RINGS[base..base + ring.len()]`.
    fn write_ring(&mut self, base: u32, ring: &[u32]) -> Result<()>;
    /// A `VIPS` entry (a VIP, or an address entry).
    fn set_vip(&mut self, key: &VipKey, meta: &VipMeta) -> Result<()>;
    /// Remove a `VIPS` entry; absent already is not an error.
    fn remove_vip(&mut self, key: &VipKey) -> Result<()>;
    /// The flow table's entry for a flow, if any.
    fn flow(&self, key: &FlowKey) -> Option<FlowState>;
    /// Every flow-table entry (entries added or evicted meanwhile may be missed or seen).
    fn scan_flows(&self, f: &mut dyn FnMut(&FlowKey, &FlowState)) -> Result<()>;
    /// Outcome and flow-table counters summed over CPUs, indexed by `Stat`.
    fn global_stats(&self) -> Result<[u64; STAT_COUNT as usize]>;
    fn vip_stats(&self, vip_id: u32) -> Result<Counter>;
    fn backend_stats(&self, backend_id: u32) -> Result<Counter>;
    /// A backend's connection attempts and how they went (outlier detection).
    fn handshakes(&self, backend_id: u32) -> Result<Handshakes>;
}

#[cfg(test)]
pub mod recorder;
