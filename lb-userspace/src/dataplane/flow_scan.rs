//! Reading the whole flow table, in batches (`BPF_MAP_LOOKUP_BATCH`: one syscall per few
//! thousand entries instead of two per entry), to count the flows still on a draining backend.
//! aya 0.14 has no batch operations, so this is the one raw `bpf(2)` call in the daemon.
use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Result, bail};
use aya::maps::IterableMap as _;
use lb_common::flow::{FlowKey, FlowState};

use super::Maps;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries per syscall.
const BATCH: usize = 4096;

/// The batch part of `union bpf_attr` (the kernel zero-fills the rest of the union).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

impl Maps {
    /// Call `f` for every flow-table entry. Entries added or evicted during the scan may be
    /// missed or seen: callers count, they do not need a snapshot. (`MapStore::scan_flows`.)
    pub(super) fn scan_flow_table(&self, f: &mut dyn FnMut(&FlowKey, &FlowState)) -> Result<()> {
        let fd = self.flows.map().fd().as_fd().as_raw_fd();
        let mut keys = vec![FlowKey::default(); BATCH];
        let mut values = vec![FlowState::default(); BATCH];
        // Hash maps use a bucket index as the batch token.
        let mut token_in: u32 = 0;
        let mut token_out: u32 = 0;
        let mut first = true;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first {
                    0
                } else {
                    &mut token_in as *mut u32 as u64
                },
                out_batch: &mut token_out as *mut u32 as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                count: BATCH as u32,
                map_fd: fd as u32,
                ..BatchAttr::default()
            };
            // SAFETY: attr points at buffers of `count` keys and values of the map's key and
            // value sizes (FlowKey/FlowState are the map's types), and at two u32 tokens; all
            // outlive the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &mut attr as *mut BatchAttr,
                    std::mem::size_of::<BatchAttr>(),
                )
            };
            let errno = std::io::Error::last_os_error();
            let n = attr.count as usize;
            if rc < 0 && errno.raw_os_error() != Some(libc::ENOENT) {
                bail!("reading the flow table in batches: {errno}");
            }
            for i in 0..n.min(BATCH) {
                f(&keys[i], &values[i]);
            }
            if rc < 0 {
                // ENOENT: that was the last batch.
                return Ok(());
            }
            token_in = token_out;
            first = false;
        }
    }
}

/// The coarse monotonic clock in flow-table ticks, as the XDP program reads it.
pub fn flow_clock_tick() -> u32 {
    crate::clock::Clock::system().flow_tick()
}
