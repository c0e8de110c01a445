//! Exactly one `sheaved` owns a pinned data plane: it holds an exclusive `flock` on the pin
//! directory for as long as it runs (the kernel drops it when the process ends, however it
//! ends). A second daemon on the same directory, or `sheave teardown` under a running one, is
//! refused with the owner's PID, read from `/proc/locks`.
use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

/// Take the lock on `dir` (which must exist), or say who has it.
pub fn lock(dir: &Path) -> Result<PinLock> {
    match try_lock(dir)? {
        Some(l) => Ok(l),
        None => match owner(dir) {
            Some(pid) => bail!(
                "the data plane pinned at {} is owned by sheaved (pid {pid}); one daemon per pin \
                 directory (stop that one, or give this one another --pin-dir)",
                dir.display()
            ),
            None => bail!("the data plane pinned at {} is in use", dir.display()),
        },
    }
}

/// The lock on `dir` if nobody holds it, `None` if somebody does.
pub fn try_lock(dir: &Path) -> Result<Option<PinLock>> {
    let f = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: flock(2) on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(PinLock { _dir: f }));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(None);
    }
    Err(e).with_context(|| format!("locking {}", dir.display()))
}

/// The PID holding the lock on `dir`, if any (from `/proc/locks`).
pub fn owner(dir: &Path) -> Option<u32> {
    let meta = std::fs::metadata(dir).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    owner_in(&locks, meta.dev(), meta.ino())
}

/// The PID of a `FLOCK` on device `dev`, inode `ino` in `/proc/locks`' text.
fn owner_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    // `1: FLOCK  ADVISORY  WRITE 9887 00:2c:2528837 0 EOF`: major:minor in hex, inode decimal.
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 77 00:2c:5 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 9887 00:2c:2528837 0 EOF\n";
        let dev = libc::makedev(0, 0x2c) as u64;
        assert_eq!(owner_in(locks, dev, 2528837), Some(9887));
        assert_eq!(owner_in(locks, dev, 5), None, "POSIX locks are not ours");
    }

    #[test]
    fn a_second_lock_is_refused_with_the_owner() {
        let dir = std::env::temp_dir().join(format!("sheave-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = lock(&dir).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        assert!(try_lock(&dir).unwrap().is_none());
        let e = format!("{:#}", lock(&dir).unwrap_err());
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        assert!(try_lock(&dir).unwrap().is_some());
        std::fs::remove_dir_all(&dir).ok();
    }
}
