//! Make the maps say what the desired state says. Rings are published double-buffered: the new
//! ring goes into the VIP's inactive half, then one map update points the VIP at it.
use anyhow::{Context as _, Result};
use lb_common::config::DataplaneConfig;

use crate::{
    dataplane::Dataplane,
    state::{State, VipState},
};

/// Write everything: host settings, backends, then each VIP's ring and entry.
pub fn apply(dp: &mut Dataplane, state: &mut State, encap: &DataplaneConfig) -> Result<()> {
    dp.set_config(encap)?;
    for id in 0..state.backends.len() as u32 {
        dp.set_backend(id, &state.backend_value(id))?;
    }
    for i in 0..state.vips.len() {
        let ring = state.ring(&state.vips[i]);
        publish_ring(dp, &mut state.vips[i], &ring)
            .with_context(|| format!("publishing VIP {}", state.vips[i].spec.name()))?;
    }
    Ok(())
}

/// Write `ring` into the VIP's inactive half and flip the VIP to it. Packets read the VIP entry
/// once, so each sees the old ring or the new one in full.
pub fn publish_ring(dp: &mut Dataplane, vip: &mut VipState, ring: &[u32]) -> Result<()> {
    let half = match vip.active {
        Some(h) => 1 - h,
        None => 0,
    };
    dp.write_ring(vip.regions[half], ring)?;
    dp.set_vip(&vip.key, &State::vip_value(vip, half))?;
    vip.active = Some(half);
    Ok(())
}
