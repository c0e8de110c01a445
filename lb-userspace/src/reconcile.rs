//! Make the maps say what the desired state says, writing only what changed (see
//! [`crate::state::Pending`]). Rings are published double-buffered: the new ring goes into the
//! VIP's inactive half, then one map update points the VIP at it. Everything goes through the
//! [`MapStore`] seam: the kernel's maps in the daemon, a recorder in the replay tests.
//!
//! Order matters for packets in flight: new backend slots are written before rings name them,
//! and removed backends are cleared (or marked down) only after no ring names them any more, so
//! a flow rescheduled away from a backend finds the new ring.
use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use lb_common::{
    config::DataplaneConfig,
    vip::{VIP_F_ADDRESS, VipKey, VipMeta},
};

use crate::{
    maps::MapStore,
    state::{Pending, State, VipState},
    wire::{family, ip_words},
};

/// Write everything (a freshly loaded data plane).
pub fn apply(maps: &mut impl MapStore, state: &mut State, encap: &DataplaneConfig) -> Result<()> {
    state.mark_all_pending();
    sync(maps, state, encap)
}

/// Write what changed since the last sync. On error what was not written stays pending, so the
/// next sync retries it (every write here is idempotent).
pub fn sync(maps: &mut impl MapStore, state: &mut State, encap: &DataplaneConfig) -> Result<()> {
    // Newly wanted checks start at their initial state, before any ring names their backend.
    state.align_checks(state.clock.now());
    let pending = state.take_pending();
    let result = write(maps, state, encap, &pending);
    if result.is_err() {
        state.restore_pending(pending);
    }
    result
}

fn write(
    maps: &mut impl MapStore,
    state: &mut State,
    encap: &DataplaneConfig,
    p: &Pending,
) -> Result<()> {
    if p.config {
        maps.set_config(encap)?;
    }
    for &id in &p.backends {
        // New slots before rings name them; down flags after the rings (below).
        let value = state.backend_value(id);
        if value.is_usable() {
            maps.set_backend(id, &value)?;
        }
    }
    let now = state.clock.now();
    for &vip_id in &p.vips {
        let Some(vip) = state.vips.iter().find(|v| v.id == vip_id) else {
            continue;
        };
        let ring = state.ring(vip, now);
        let vip = state.vip_by_id_mut(vip_id).expect("found above");
        publish_ring(maps, vip, &ring.slots)
            .with_context(|| format!("publishing VIP {}", vip.spec.name()))?;
        vip.published_weights = ring.weights;
        vip.failing_open = ring.failing_open;
    }
    for key in &p.removed_vips {
        // Already absent is fine: a retried sync may have removed it before failing later.
        maps.remove_vip(key)?;
    }
    sync_addresses(maps, state)?;
    for &id in &p.backends {
        // Cleared slots, and the down flag, which depends on the rings just published (a VIP
        // failing open keeps its down backends' flows).
        let value = state.backend_value(id);
        maps.set_backend(id, &value)?;
    }
    Ok(())
}

/// Make the address entries (ICMP echo answered, fragments dropped) exactly the VIPs' addresses.
fn sync_addresses(maps: &mut impl MapStore, state: &mut State) -> Result<()> {
    let want: BTreeSet<_> = state.vips.iter().map(|v| v.spec.address).collect();
    let key = |a| VipKey::address(ip_words(a), family(a));
    let value = VipMeta {
        flags: VIP_F_ADDRESS,
        ..VipMeta::default()
    };
    for &a in want.difference(&state.published_addresses.clone()) {
        maps.set_vip(&key(a), &value)
            .context("writing a VIP address entry")?;
        state.published_addresses.insert(a);
    }
    for a in state.published_addresses.clone().difference(&want) {
        maps.remove_vip(&key(*a))?;
        state.published_addresses.remove(a);
    }
    Ok(())
}

/// Write `ring` into the VIP's inactive half and flip the VIP to it. Packets read the VIP entry
/// once, so each sees the old ring or the new one in full.
pub fn publish_ring(maps: &mut impl MapStore, vip: &mut VipState, ring: &[u32]) -> Result<()> {
    let half = match vip.active {
        Some(h) => 1 - h,
        None => 0,
    };
    maps.write_ring(vip.regions[half], ring)?;
    maps.set_vip(&vip.key, &State::vip_value(vip, half))?;
    vip.active = Some(half);
    vip.rebuilds += 1;
    // Count into a flat array: rings have up to a million slots.
    let mut counts = vec![0u32; lb_common::limits::MAX_BACKENDS as usize];
    for &id in ring {
        if let Some(c) = counts.get_mut(id as usize) {
            *c += 1;
        }
    }
    vip.slot_counts = (0..).zip(counts).filter(|&(_, c)| c > 0).collect();
    Ok(())
}
