//! Where a program's pins live by default: per program, per network namespace, per interface,
//! `/sys/fs/bpf/sheave/<program>/netns-<id>/<iface>`. Interface names repeat across network
//! namespaces (every container has its `eth0`) while bpffs is shared by the whole host, so a
//! name alone would let one namespace's command find, refuse or detach another's program.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// The root of Sheave's pins.
pub const ROOT: &str = "/sys/fs/bpf/sheave";

/// The load balancer's programs and maps.
pub const LB: &str = "lb";
/// The backends' decap program.
pub const DECAP: &str = "decap";
/// The pass-through program for a veth peer.
pub const PASS: &str = "pass";

/// This process's network namespace as the kernel identifies it (the inode of its nsfs file,
/// what `ip netns identify` and `lsns` show).
pub fn netns_id() -> Result<u64> {
    let m = std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    Ok(m.ino())
}

/// The default pin directory of `program` for `iface` in this network namespace.
pub fn default_dir(program: &str, iface: &str) -> Result<PathBuf> {
    Ok(Path::new(ROOT)
        .join(program)
        .join(format!("netns-{}", netns_id()?))
        .join(iface))
}

/// Where a Sheave before per-namespace pins kept them: `/sys/fs/bpf/sheave/<program>/<iface>`.
pub fn legacy_dir(program: &str, iface: &str) -> PathBuf {
    Path::new(ROOT).join(program).join(iface)
}

/// An error if `legacy` (see [`legacy_dir`]) still holds pins: they belong to an older Sheave
/// whose program may still be attached, and must be removed on purpose, not passed over.
pub fn refuse_legacy(legacy: &Path) -> Result<()> {
    let has_pins = std::fs::read_dir(legacy)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_file()))))
        .unwrap_or(false);
    anyhow::ensure!(
        !has_pins,
        "{} holds pins of an earlier Sheave (before pins were kept per network namespace); \
         remove them with `sheave teardown --pin-dir {}` (drops its flows) or \
         `sheave decap detach --pin-dir {}` for a decap program",
        legacy.display(),
        legacy.display(),
        legacy.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dirs_carry_the_network_namespace() {
        let d = default_dir(DECAP, "eth0").unwrap();
        let ns = format!("netns-{}", netns_id().unwrap());
        assert_eq!(d, Path::new(ROOT).join("decap").join(ns).join("eth0"));
        assert_eq!(
            legacy_dir(LB, "eth0"),
            Path::new("/sys/fs/bpf/sheave/lb/eth0")
        );
    }
}
