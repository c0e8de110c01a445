//! The flow hash and the Maglev slot choice: the one copy used by the XDP program, the daemon and
//! `sheave explain`, so the simulator and the kernel pick the same backend bit for bit.
use crate::flow::FlowKey;

/// Fixed seed: the hash must be stable across restarts so flows keep their backend.
pub const FLOW_HASH_SEED: u64 = 0x5368_6561_7665_4c42; // "SheaveLB"

/// xxh64 of the 5-tuple, folded to 32 bits.
#[inline(always)]
pub fn flow_hash(key: &FlowKey) -> u32 {
    let h = xxhash_rust::xxh64::xxh64(key.as_bytes(), FLOW_HASH_SEED);
    (h ^ (h >> 32)) as u32
}

/// Which slot of a Maglev ring of `ring_size` entries a flow with this hash uses.
#[inline(always)]
pub fn ring_slot(hash: u32, ring_size: u32) -> u32 {
    hash % ring_size
}
