//! The load balancer's maps. Layouts are the `lb-common` types; userspace writes all but the flow
//! table and counters.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use lb_common::{
    backend::{Backend, NextHopCache},
    config::DataplaneConfig,
    flow::{FlowKey, FlowState},
    limits::{DEFAULT_FLOWS, DEFAULT_RING_SLOTS, MAX_BACKENDS, MAX_VIPS},
    stats::{Counter, Handshakes, STAT_SLOTS},
    vip::{FloodBucket, VipKey, VipMeta},
};

/// {address, port, protocol} → everything the packet path needs about the VIP.
#[map]
pub static VIPS: HashMap<VipKey, VipMeta> = HashMap::with_max_entries(MAX_VIPS, 0);

/// Backend id → address and state.
#[map]
pub static BACKENDS: Array<Backend> = Array::with_max_entries(MAX_BACKENDS, 0);

/// All VIPs' Maglev rings (two halves each), holding backend ids; see `VipMeta::ring_base`.
/// Memory-mappable: the daemon writes a new ring with one copy instead of a syscall per slot.
#[map]
pub static RINGS: Array<u32> = Array::with_max_entries(DEFAULT_RING_SLOTS, BPF_F_MMAPABLE);

/// 5-tuple → backend. An LRU so the oldest idle flows make room under pressure; one LRU list per
/// CPU (BPF_F_NO_COMMON_LRU) so CPUs do not contend on a shared list lock.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(DEFAULT_FLOWS, BPF_F_NO_COMMON_LRU);

/// Next hops per backend and CPU, cached from the FIB (see `nexthop.rs`).
#[map]
pub static NEXTHOPS: PerCpuArray<NextHopCache> = PerCpuArray::with_max_entries(MAX_BACKENDS, 0);

/// New-flow guard buckets, per VIP and CPU.
#[map]
pub static FLOOD: PerCpuArray<FloodBucket> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

/// Host-wide settings, one entry.
#[map]
pub static CONFIG: Array<DataplaneConfig> = Array::with_max_entries(1, 0);

#[map]
pub static VIP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

#[map]
pub static BACKEND_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_BACKENDS, 0);

/// Connection attempts per backend and how they went (outlier detection's signals).
#[map]
pub static HANDSHAKES: PerCpuArray<Handshakes> = PerCpuArray::with_max_entries(MAX_BACKENDS, 0);

/// Outcomes and flow-table events, indexed by `lb_common::stats::Stat`.
#[map]
pub static GLOBAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// Per CPU: the state of the parser's IPv4 option and IPv6 extension walks (see
/// `lb_ebpf::options`). Kernel-only scratch; userspace never reads it.
#[map]
pub static PARSE_SCRATCH: PerCpuArray<lb_ebpf::options::Scratch> =
    PerCpuArray::with_max_entries(1, 0);

const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
const BPF_F_MMAPABLE: u32 = 1 << 10;
