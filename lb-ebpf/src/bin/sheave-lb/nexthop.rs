//! A per-CPU cache of each backend's next hop. The FIB lookup is the largest single cost of a
//! forwarded packet (about 90 ns for IPv4 and 200 ns for IPv6 here); its answer for a backend
//! rarely changes, so each CPU reuses it for a second. Packets longer than any the FIB has
//! accepted for that backend still go to the FIB, so its MTU check keeps working.
use lb_common::backend::{Backend, NextHopCache};
use lb_ebpf::transmit::Hop;

use crate::maps::NEXTHOPS;

/// How long a cached next hop is trusted: a changed neighbour (a replaced router or backend
/// NIC) is picked up within this time.
const TTL_NS: u64 = 1_000_000_000;

/// The cached next hop for `backend`, if fresh and known to fit a packet of `tot_len` bytes.
#[inline(always)]
pub fn cached(backend_id: u32, backend: &Backend, tot_len: u16, now_ns: u64) -> Option<Hop> {
    let e = NEXTHOPS.get(backend_id)?;
    if tot_len > e.checked_len || e.addr != backend.addr {
        return None;
    }
    if e.expires_ns < now_ns {
        return None;
    }
    Some(Hop {
        ifindex: e.ifindex,
        smac: e.smac,
        dmac: e.dmac,
    })
}

/// Remember the FIB's answer for `backend` (which accepted a packet of `tot_len` bytes).
#[inline(always)]
pub fn store(backend_id: u32, backend: &Backend, hop: &Hop, tot_len: u16, now: u64) {
    let Some(e) = NEXTHOPS.get_ptr_mut(backend_id) else {
        return;
    };
    let old = unsafe { *e };
    // Same hop still fresh: keep the largest length known to fit.
    let same = old.addr == backend.addr
        && old.ifindex == hop.ifindex
        && old.dmac == hop.dmac
        && old.expires_ns >= now;
    let checked_len = if same && old.checked_len > tot_len {
        old.checked_len
    } else {
        tot_len
    };
    unsafe {
        *e = NextHopCache {
            addr: backend.addr,
            ifindex: hop.ifindex,
            checked_len,
            smac: hop.smac,
            dmac: hop.dmac,
            _pad: [0; 6],
            expires_ns: now + TTL_NS,
        };
    }
}
