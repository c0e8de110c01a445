//! A [`MapStore`] in memory for the replay tests.
use std::collections::BTreeMap;

use anyhow::Result;
use lb_common::{
    backend::Backend,
    config::DataplaneConfig,
    flow::{FlowKey, FlowState},
    stats::{Counter, Handshakes, STAT_COUNT},
    vip::{VipKey, VipMeta},
};

use super::MapStore;

/// One write, as the [`Recorder`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Config(DataplaneConfig),
    Backend(u32, Backend),
    /// Ring slots written at `base`: their backend ids.
    Ring {
        base: u32,
        slots: Vec<u32>,
    },
    Vip(VipKey, VipMeta),
    RemoveVip(VipKey),
}

/// A [`MapStore`] in memory that records every write: what the maps hold (`vips`, `backends`,
/// `rings`) and, in order, how they got there (`log`). Flows and counters are whatever the test
/// puts in.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub log: Vec<Write>,
    pub config: DataplaneConfig,
    pub backends: BTreeMap<u32, Backend>,
    pub rings: BTreeMap<u32, u32>,
    pub vips: BTreeMap<VipKey, VipMeta>,
    pub flows: BTreeMap<FlowKey, FlowState>,
    pub global: [u64; STAT_COUNT as usize],
    pub vip_counters: BTreeMap<u32, Counter>,
    pub backend_counters: BTreeMap<u32, Counter>,
    pub handshakes: BTreeMap<u32, Handshakes>,
    /// The next writes fail with this message (a full map, say), until cleared.
    pub fail_writes: Option<String>,
}

impl Recorder {
    /// The writes since the last call, in order.
    pub fn take_log(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.log)
    }

    /// `len` ring slots from `base`, as a packet reading them would see them.
    pub fn ring(&self, base: u32, len: u32) -> Vec<u32> {
        (base..base + len)
            .map(|i| self.rings.get(&i).copied().unwrap_or(0))
            .collect()
    }

    fn write(&mut self, w: Write) -> Result<()> {
        if let Some(why) = &self.fail_writes {
            anyhow::bail!("{why}");
        }
        match &w {
            Write::Config(c) => self.config = *c,
            Write::Backend(id, b) => {
                self.backends.insert(*id, *b);
            }
            Write::Ring { base, slots } => {
                for (i, s) in (*base..).zip(slots) {
                    self.rings.insert(i, *s);
                }
            }
            Write::Vip(k, m) => {
                self.vips.insert(*k, *m);
            }
            Write::RemoveVip(k) => {
                self.vips.remove(k);
            }
        }
        self.log.push(w);
        Ok(())
    }
}

impl MapStore for Recorder {
    fn set_config(&mut self, cfg: &DataplaneConfig) -> Result<()> {
        self.write(Write::Config(*cfg))
    }
    fn set_backend(&mut self, id: u32, b: &Backend) -> Result<()> {
        self.write(Write::Backend(id, *b))
    }
    fn write_ring(&mut self, base: u32, ring: &[u32]) -> Result<()> {
        self.write(Write::Ring {
            base,
            slots: ring.to_vec(),
        })
    }
    fn set_vip(&mut self, key: &VipKey, meta: &VipMeta) -> Result<()> {
        self.write(Write::Vip(*key, *meta))
    }
    fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        self.write(Write::RemoveVip(*key))
    }
    fn flow(&self, key: &FlowKey) -> Option<FlowState> {
        self.flows.get(key).copied()
    }
    fn scan_flows(&self, f: &mut dyn FnMut(&FlowKey, &FlowState)) -> Result<()> {
        for (k, v) in &self.flows {
            f(k, v);
        }
        Ok(())
    }
    fn global_stats(&self) -> Result<[u64; STAT_COUNT as usize]> {
        Ok(self.global)
    }
    fn vip_stats(&self, vip_id: u32) -> Result<Counter> {
        Ok(self.vip_counters.get(&vip_id).copied().unwrap_or_default())
    }
    fn handshakes(&self, backend_id: u32) -> Result<Handshakes> {
        Ok(self
            .handshakes
            .get(&backend_id)
            .copied()
            .unwrap_or_default())
    }
    fn backend_stats(&self, backend_id: u32) -> Result<Counter> {
        Ok(self
            .backend_counters
            .get(&backend_id)
            .copied()
            .unwrap_or_default())
    }
}
