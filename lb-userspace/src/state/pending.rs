//! What the reconciler still has to write, and how a failed write is retried or undone.
use std::collections::BTreeSet;

use lb_common::vip::VipKey;

use super::State;

/// What [`crate::reconcile::sync`] still has to write.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    /// Backend slots to (re)write: valid if in use, cleared otherwise.
    pub backends: BTreeSet<u32>,
    /// VIP ids whose ring and entry to publish.
    pub vips: BTreeSet<u32>,
    /// VIP entries to delete.
    pub removed_vips: Vec<VipKey>,
    pub config: bool,
}

impl State {
    /// Take what has to be written; the caller writes it (see `reconcile::sync`).
    pub fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// The host-wide settings changed.
    pub fn mark_config_pending(&mut self) {
        self.pending.config = true;
    }

    /// Mark everything for writing (a fresh data plane).
    pub fn mark_all_pending(&mut self) {
        self.pending.config = true;
        self.pending.backends = self.backends().map(|(id, _)| id).collect();
        self.pending.vips = self.vips.iter().map(|v| v.id).collect();
    }

    /// Go back to this state (the one before a change) after the change's state, `failed`, was
    /// partly written to the maps: the next sync writes this state over whatever got written.
    /// Ring halves follow the maps (a VIP the failed sync flipped keeps its new active half, so
    /// this ring goes into the other one, as any publish does); VIPs and backends only the
    /// failed state had are removed and cleared.
    pub fn recover_from(&mut self, failed: &State) {
        for v in &mut self.vips {
            if let Some(f) = failed.vips.iter().find(|f| f.key == v.key)
                && f.regions == v.regions
            {
                v.active = f.active;
                v.rebuilds = f.rebuilds;
            }
        }
        for f in &failed.vips {
            if self.vip(&f.key).is_err() {
                self.pending.removed_vips.push(f.key);
            }
        }
        self.published_addresses = failed.published_addresses.clone();
        self.mark_all_pending();
        for (id, _) in failed.backends() {
            self.pending.backends.insert(id);
        }
    }

    /// Put back what a failed write did not finish, so the next sync retries it.
    pub fn restore_pending(&mut self, p: Pending) {
        self.pending.config |= p.config;
        self.pending.backends.extend(p.backends);
        self.pending.vips.extend(p.vips);
        self.pending.removed_vips.extend(p.removed_vips);
    }
}
