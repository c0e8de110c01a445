//! The `RINGS` array, memory-mapped: publishing a 65537-slot ring is one copy into shared memory
//! instead of 65537 map-update syscalls. The XDP program reads the same pages.
use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Result, bail};
use aya::maps::{Map, MapData};

/// Bytes between slots: the kernel stores array elements rounded up to 8 bytes.
const STRIDE: usize = 8;

pub struct RingMemory {
    /// Slot `i`'s u32 is the low half (little-endian) of the u64 at `ptr[i]`.
    ptr: *mut u64,
    slots: usize,
    len_bytes: usize,
    /// Keeps the map (and so the mapping's backing) alive.
    _map: MapData,
}

// SAFETY: the mapping is owned by this value alone (no other userspace alias), like a Vec.
unsafe impl Send for RingMemory {}

impl RingMemory {
    pub fn new(map: Map, slots: u32) -> Result<RingMemory> {
        let Map::Array(data) = map else {
            bail!("RINGS is not an array map");
        };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len_bytes = (slots as usize * STRIDE).div_ceil(page) * page;
        // SAFETY: mapping a BPF_F_MMAPABLE array's fd; the kernel checks size and flags.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!(
                "mapping the RINGS map: {} (the kernel needs BPF_F_MMAPABLE arrays, Linux 5.5+)",
                std::io::Error::last_os_error()
            );
        }
        Ok(RingMemory {
            ptr: ptr.cast(),
            slots: slots as usize,
            len_bytes,
            _map: data,
        })
    }

    /// Copy `ring` to slots `base..base + ring.len()`.
    pub fn write(&mut self, base: u32, ring: &[u32]) -> Result<()> {
        let start = base as usize;
        if start
            .checked_add(ring.len())
            .is_none_or(|end| end > self.slots)
        {
            bail!(
                "ring slots {start}..{} are outside the ring table ({} slots)",
                start + ring.len(),
                self.slots
            );
        }
        // SAFETY: in bounds (checked above); the XDP program only reads these slots, and only
        // after the VIP entry is flipped to them (see `reconcile::publish_ring`).
        let slots = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), ring.len()) };
        for (slot, id) in slots.iter_mut().zip(ring) {
            *slot = *id as u64;
        }
        // Make the slots visible before the caller's map update that points the VIP at them.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for RingMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len_bytes) };
    }
}
