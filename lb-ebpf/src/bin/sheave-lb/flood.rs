//! The new-flow guard: a token bucket per VIP and CPU. Within the VIP's rate every new flow goes
//! into the flow table; above it new flows are still forwarded (by the ring, which is stateless)
//! but not inserted, so a flood of new tuples cannot evict the established flows from the LRU.
use aya_ebpf::helpers::bpf_ktime_get_ns;
use lb_common::{stats::Stat, vip::VipMeta};

use crate::{maps::FLOOD, stats};

/// One flow's worth of tokens (tokens are flow-nanoseconds).
const FLOW_COST: u64 = 1_000_000_000;
/// Refill at most one second at a time: bounds the bucket (one second of burst) and keeps the
/// multiplication below u64::MAX for any u32 rate.
const MAX_REFILL_NS: u64 = 1_000_000_000;

/// Whether a new flow of this VIP may enter the flow table now.
#[inline(always)]
pub fn admit(vip: &VipMeta) -> bool {
    let rate = vip.new_flow_rate as u64;
    if rate == 0 {
        return true;
    }
    let Some(b) = FLOOD.get_ptr_mut(vip.vip_id) else {
        return true;
    };
    // Only read on the new-flow path, and only for VIPs with a limit.
    let now = unsafe { bpf_ktime_get_ns() };
    let bucket = unsafe { &mut *b };
    let elapsed = now.saturating_sub(bucket.last_ns).min(MAX_REFILL_NS);
    let tokens = (bucket.tokens + elapsed * rate).min(rate * FLOW_COST);
    bucket.last_ns = now;
    if tokens >= FLOW_COST {
        bucket.tokens = tokens - FLOW_COST;
        true
    } else {
        bucket.tokens = tokens;
        stats::event(Stat::FloodNotInserted);
        false
    }
}
