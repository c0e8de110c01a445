//! Reading a running `sheaved`'s `VIPS` map with bpftool, to check that an API call's reply
//! really comes after the map update: every ring change is published by pointing the VIP's entry
//! at the other half of its double-buffered ring, so `ring_base` must have flipped by the time
//! the reply arrives. (Dumping `RINGS` itself, millions of slots, would take longer than the
//! benchmark.)
//!
//! The map is found through the daemon's open file descriptors (`/proc/PID/fdinfo` names their
//! map ids), not by name: other labs or tests may be running their own `VIPS` maps.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, capture};

/// `VipMeta` in lb-common: vip_id, flags, ring_size, ring_base, new_flow_rate, padding, each a
/// native-endian u32.
const VIP_META_LEN: usize = 24;
const FLAGS_AT: usize = 4;
const RING_BASE_AT: usize = 12;
/// `VIP_F_ADDRESS` in lb-common: an address entry (echo replies, fragments), not a VIP.
const VIP_F_ADDRESS: u32 = 1;

pub struct VipMap {
    id: u32,
}

impl VipMap {
    /// The `VIPS` map of process `pid`; `Ok(None)` when bpftool is not installed (it is
    /// optional), an error when it is but the map cannot be found.
    pub fn of_process(pid: u32) -> Result<Option<VipMap>> {
        if cmd::which("bpftool").is_none() {
            return Ok(None);
        }
        let dir = format!("/proc/{pid}/fdinfo");
        let mut ids: Vec<u32> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {dir}"))?
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("map_id:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let info = bpftool(&["map", "show", "id", &id.to_string()])?;
            if info["name"] == "VIPS" {
                return Ok(Some(VipMap { id }));
            }
        }
        bail!("process {pid} has no VIPS map open");
    }

    /// The map's id, for messages.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The first slot of the active ring of the VIP whose id is `vip_id`.
    pub fn ring_base(&self, vip_id: u32) -> Result<u32> {
        let entries = bpftool(&["map", "dump", "id", &self.id.to_string()])?;
        let entries = entries.as_array().context("bpftool map dump: not a list")?;
        for e in entries {
            let value = hex_bytes(&e["value"])?;
            if value.len() != VIP_META_LEN {
                bail!(
                    "VIPS values are {} bytes, expected {VIP_META_LEN}: has VipMeta changed?",
                    value.len()
                );
            }
            if u32_at(&value, FLAGS_AT) & VIP_F_ADDRESS == 0 && u32_at(&value, 0) == vip_id {
                return Ok(u32_at(&value, RING_BASE_AT));
            }
        }
        bail!("VIP id {vip_id} is not in map {}", self.id)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// bpftool's raw `"value": ["0x0a", ...]`, present whether or not the map has BTF.
fn hex_bytes(v: &Value) -> Result<Vec<u8>> {
    v.as_array()
        .context("no raw bytes in bpftool's output")?
        .iter()
        .map(|b| {
            let s = b.as_str().context("a byte that is not a string")?;
            u8::from_str_radix(s.trim_start_matches("0x"), 16)
                .with_context(|| format!("bad byte {s:?}"))
        })
        .collect()
}

fn bpftool(args: &[&str]) -> Result<Value> {
    let mut c = Command::new("bpftool");
    c.arg("--json").args(args);
    let out = capture(&mut c)?;
    if !out.status.success() {
        bail!("`{}` failed: {}", cmd::describe(&c), out.stderr.trim());
    }
    serde_json::from_str(&out.stdout).with_context(|| format!("parsing `{}`", cmd::describe(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_bytes() {
        let v = serde_json::json!(["0x01", "0x00", "0xff"]);
        assert_eq!(hex_bytes(&v).unwrap(), vec![1, 0, 255]);
        assert!(hex_bytes(&serde_json::json!({"a": 1})).is_err());
    }
}
