//! A pinned data plane from another version of Sheave, made by hand: a `LAYOUT` array map
//! holding a version number no `sheaved` uses, pinned where a starting daemon looks. Made with
//! raw bpf(2) calls rather than bpftool, which the lab does not require.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// `union bpf_attr`, as zeroed 8-byte-aligned storage with the few fields we set.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32_at(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn call(&mut self, cmd: libc::c_long) -> io::Result<i64> {
        // SAFETY: bpf(2) reads at most `size` bytes of the attribute, which we own; pointers
        // stored in it point to buffers that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_uint,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }
}

/// Pins at `dir/LAYOUT` a one-entry u32 array holding `version` (creating `dir`).
pub fn pin_foreign_layout(dir: &Path, version: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fd = Attr::new()
        .u32_at(0, BPF_MAP_TYPE_ARRAY)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, 1)
        .call(BPF_MAP_CREATE)
        .context("creating a LAYOUT map")?;
    // SAFETY: a successful BPF_MAP_CREATE returns a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd) as u32;
    let (key, value) = (0u32, version);
    Attr::new()
        .u32_at(0, raw)
        .u64_at(8, (&raw const key) as u64)
        .u64_at(16, (&raw const value) as u64)
        .call(BPF_MAP_UPDATE_ELEM)
        .context("writing the layout version")?;
    let path = dir.join("LAYOUT");
    let c = CString::new(path.as_os_str().as_bytes())?;
    Attr::new()
        .u64_at(0, c.as_ptr() as u64)
        .u32_at(8, raw)
        .call(BPF_OBJ_PIN)
        .with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}
