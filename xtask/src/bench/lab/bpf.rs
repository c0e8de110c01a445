//! The CPU time of an XDP program, as the kernel measures it. XDP runs in softirq, not in any
//! process, so the only direct way to attribute CPU to it is the kernel's per-program run-time
//! statistics (`run_time_ns`, `run_cnt`), which count only while statistics are enabled.
//!
//! They are enabled with `BPF_ENABLE_STATS` rather than the `kernel.bpf_stats_enabled` sysctl:
//! the syscall hands back a file descriptor and statistics stay on only while it is open, so
//! they switch off again however this process ends (Ctrl-C, panic, SIGKILL), and a sysctl that
//! someone else set is never overwritten. The cost while on is two clock reads per program run
//! (tens of ns per packet), charged to Sheave's packets only.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::capture;

/// `enum bpf_cmd` values (uapi/linux/bpf.h).
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_ENABLE_STATS: libc::c_long = 32;
/// `enum bpf_stats_type`.
const BPF_STATS_RUN_TIME: u32 = 0;

/// `bpf(cmd, attr, size)`; `attr` holds the leading fields of `union bpf_attr` for `cmd` (the
/// kernel zero-fills the rest). Returns the new file descriptor.
fn bpf_fd(cmd: libc::c_long, attr: &mut [u32]) -> std::io::Result<OwnedFd> {
    // SAFETY: attr is a live, writable buffer of the size passed; the kernel reads at most that.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: on success these commands return a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Run-time statistics are on while this lives.
#[derive(Debug)]
pub struct StatsOn {
    _fd: OwnedFd,
}

pub fn enable_stats() -> Result<StatsOn> {
    let fd = bpf_fd(BPF_ENABLE_STATS, &mut [BPF_STATS_RUN_TIME])
        .context("enabling BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+)")?;
    Ok(StatsOn { _fd: fd })
}

/// A loaded program, held open by id so that its statistics can be read.
#[derive(Debug)]
pub struct Prog {
    fd: OwnedFd,
}

/// Cumulative figures of one program since it was loaded (while statistics were on).
#[derive(Debug, Clone, Copy, Default)]
pub struct Runs {
    pub ns: u64,
    pub count: u64,
}

impl Prog {
    pub fn open(id: u32) -> Result<Prog> {
        // struct { prog_id, next_id, open_flags }
        let fd = bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut [id, 0, 0])
            .with_context(|| format!("opening BPF program {id}"))?;
        Ok(Prog { fd })
    }

    /// The program's attached to `iface` in namespace `netns` (native or generic XDP).
    pub fn attached_xdp(netns: &str, iface: &str) -> Result<Prog> {
        let out =
            capture(Command::new("ip").args(["-n", netns, "-j", "link", "show", "dev", iface]))?;
        if !out.status.success() {
            bail!("ip -n {netns} link show dev {iface}: {}", out.stderr.trim());
        }
        let links: Value = serde_json::from_str(&out.stdout).context("parsing `ip -j link`")?;
        let id = xdp_prog_id(&links[0])
            .with_context(|| format!("no XDP program on {iface} in {netns}"))?;
        Prog::open(id)
    }

    /// Read from `/proc/self/fdinfo`, which shows a program fd's `run_time_ns` and `run_cnt`.
    pub fn runs(&self) -> Result<Runs> {
        let path = format!("/proc/self/fdinfo/{}", self.fd.as_raw_fd());
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_fdinfo(&text).with_context(|| format!("{path} has no run_time_ns/run_cnt"))
    }
}

/// `"xdp": {"prog": {"id": N}}` with one program, `"xdp": {"attached": [{"prog": ...}]}` with
/// several modes at once.
fn xdp_prog_id(link: &Value) -> Option<u32> {
    let xdp = &link["xdp"];
    let id = xdp["prog"]["id"]
        .as_u64()
        .or_else(|| xdp["attached"].as_array()?.first()?["prog"]["id"].as_u64())?;
    u32::try_from(id).ok()
}

fn parse_fdinfo(text: &str) -> Option<Runs> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some(Runs {
        ns: field("run_time_ns:")?,
        count: field("run_cnt:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_xdp_program_id() {
        let one: Value = serde_json::from_str(r#"{"xdp":{"mode":1,"prog":{"id":42}}}"#).unwrap();
        assert_eq!(xdp_prog_id(&one), Some(42));
        let multi: Value =
            serde_json::from_str(r#"{"xdp":{"mode":4,"attached":[{"mode":1,"prog":{"id":7}}]}}"#)
                .unwrap();
        assert_eq!(xdp_prog_id(&multi), Some(7));
        assert_eq!(xdp_prog_id(&serde_json::json!({"ifname": "lo"})), None);
    }

    #[test]
    fn reads_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nprog_type:\t6\nrun_time_ns:\t1234\nrun_cnt:\t5\n";
        let r = parse_fdinfo(text).unwrap();
        assert_eq!((r.ns, r.count), (1234, 5));
    }
}
