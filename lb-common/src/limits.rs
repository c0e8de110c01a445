//! Map capacities. The kernel object declares these; userspace may resize some at load time.

/// VIPs, also the size of the per-VIP counter array.
pub const MAX_VIPS: u32 = 512;
/// Backend slots, also the size of the per-backend counter array.
pub const MAX_BACKENDS: u32 = 4096;
/// Default flow-table capacity (LRU hash entries), overridable by the daemon at load time.
pub const DEFAULT_FLOWS: u32 = 1 << 20;
/// Default Maglev table size for a VIP (prime, Maglev paper's recommendation for up to ~650 backends
/// at 1% imbalance).
pub const DEFAULT_RING_SIZE: u32 = 65_537;
/// Ring slots declared in the object; the daemon sizes `RINGS` for its VIPs at load time.
pub const DEFAULT_RING_SLOTS: u32 = 2 * 32 * DEFAULT_RING_SIZE;
/// Decap program: VIPs a backend accepts encapsulated traffic for.
pub const MAX_DECAP_VIPS: u32 = 1024;

/// Version of the pinned maps' layout (which maps, their key and value types). A daemon adopts
/// pinned maps only with the same version; bump it whenever a shared map type changes.
/// v2: `FlowState` carries the opening SYN's sequence number.
/// v3: `GLOBAL_STATS` has `STAT_SLOTS` (64) entries, room for new outcomes; `HANDSHAKES`.
pub const MAP_LAYOUT_VERSION: u32 = 3;
