//! Named network namespaces (`ip netns` style, under /run/netns): creation, entering, killing
//! their processes, deletion, and sweeping the leftovers of dead processes.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cmd::{self, CONFIG_TIMEOUT};

/// Where `ip netns add` bind-mounts named namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// How long processes get to exit after SIGTERM before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long SIGKILLed processes get to disappear before we give up on them.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Lab prefixes (`sl<pid><tag>...`) owned by live labs of this process. sweep_stale() uses it
/// to tell this process's live namespaces from leftovers of an earlier process with our pid.
static LIVE_PREFIXES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn live_prefixes() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // The set stays consistent even if a holder panicked: every operation is a single call.
    LIVE_PREFIXES.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

pub(crate) fn exists(name: &str) -> bool {
    path(name).exists()
}

/// `program` run inside namespace `name` by `nsenter --net`. Unlike `ip netns exec`, nsenter
/// keeps our mount namespace, so /sys and the bpffs pins stay visible.
pub(crate) fn command(name: &str, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", path(name).display()))
        .arg("--")
        .arg(program);
    c
}

/// Runs `ip ARGS` and returns its stdout.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    cmd::checked(Command::new("ip").args(args), CONFIG_TIMEOUT)
}

/// Runs `ethtool ARGS` inside namespace `name`.
pub(crate) fn ethtool(name: &str, args: &[&str]) -> Result<()> {
    cmd::checked(command(name, "ethtool").args(args), CONFIG_TIMEOUT).map(drop)
}

/// Sets `key=value` sysctls inside namespace `name` (net.* sysctls are per namespace, resolved
/// against the namespace of the process that opens them).
pub(crate) fn sysctl(name: &str, settings: &[String]) -> Result<()> {
    let mut c = command(name, "sysctl");
    c.args(["-q", "-w"]).args(settings);
    cmd::checked(&mut c, CONFIG_TIMEOUT).map(drop)
}

pub(crate) fn add(name: &str) -> Result<()> {
    ip(&["netns", "add", name]).map(drop)
}

/// Moves the calling thread (only it) into namespace `name`: sockets it opens afterwards live there.
pub(crate) fn enter(name: &str) -> Result<()> {
    let p = path(name);
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    // SAFETY: setns(2) on a valid, open namespace fd; CLONE_NEWNET only affects this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("setns({})", p.display()));
    }
    Ok(())
}

/// Kills everything in namespace `name`, then deletes it. Succeeds if it is already gone.
pub(crate) fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    // `ip netns del` only unmounts the name: a process still inside keeps the namespace (and its
    // interfaces, and any XDP program on them) alive. So empty it first.
    let killed = kill_members(name);
    let deleted = ip(&["netns", "del", name]);
    // Losing a race with a concurrent sweep is fine; what matters is that the name is gone.
    if exists(name) {
        deleted?;
        bail!("namespace {name} still exists after `ip netns del`");
    }
    killed
}

/// The identity (device, inode) of a namespace file.
fn ns_id(p: &Path) -> io::Result<(u64, u64)> {
    let m = fs::metadata(p)?;
    Ok((m.dev(), m.ino()))
}

/// Pids of the processes whose network namespace is `name` (zombies have none and don't count).
fn members(name: &str) -> Result<Vec<i32>> {
    let id = match ns_id(&path(name)) {
        Ok(id) => id,
        // Deleted meanwhile (a concurrent sweep): nothing left to kill through this name.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("stat of namespace {name}")),
    };
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // The process may exit meanwhile: any error means "not a member".
        if ns_id(&entry.path().join("ns/net")).is_ok_and(|pid_ns| pid_ns == id) {
            pids.push(pid as i32);
        }
    }
    Ok(pids)
}

/// SIGTERM to every process in `name`, SIGKILL to the ones still there after [`TERM_GRACE`].
pub(crate) fn kill_members(name: &str) -> Result<()> {
    for (sig, grace) in [(libc::SIGTERM, TERM_GRACE), (libc::SIGKILL, KILL_GRACE)] {
        let pids = members(name)?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if members(name)?.is_empty() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    bail!(
        "processes {:?} in namespace {name} survive SIGKILL",
        members(name)?
    )
}

/// Reserves a lab prefix `sl<pid><tag>` (plus `x<n>` if this process already uses it).
pub(crate) fn claim_prefix(tag: &str) -> Result<String> {
    let base = format!("sl{}{tag}", std::process::id());
    let taken = names()?;
    let mut live = live_prefixes();
    for n in 0..1000 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            format!("{base}x{n}")
        };
        let dash = format!("{candidate}-");
        // A leftover with our own pid (an earlier process had it) also blocks the name.
        if !live.contains(&candidate) && !taken.iter().any(|t| t.starts_with(&dash)) {
            live.insert(candidate.clone());
            return Ok(candidate);
        }
    }
    bail!("no free lab prefix left for {base}")
}

pub(crate) fn release_prefix(prefix: &str) {
    live_prefixes().remove(prefix);
}

/// Names under /run/netns (none if the directory does not exist yet).
fn names() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(NETNS_RUN_DIR),
    };
    Ok(entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect())
}

/// The pid in a lab prefix `sl<pid><tag>` (tag: lowercase letters and digits, first a letter).
fn prefix_pid(prefix: &str) -> Option<u32> {
    let rest = prefix.strip_prefix("sl")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let tag_ok = rest[digits..]
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    tag_ok.then(|| rest[..digits].parse().ok()).flatten()
}

/// For a lab namespace name `sl<pid><tag>-<role>`, the owning pid and the lab prefix.
fn owner(name: &str) -> Option<(u32, &str)> {
    let (prefix, role) = name.split_once('-')?;
    let role_ok = matches!(role, "sw" | "client" | "lb")
        || role
            .strip_prefix('b')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    role_ok
        .then(|| Some((prefix_pid(prefix)?, prefix)))
        .flatten()
}

/// Whether lab `prefix` of process `pid` belongs to no live lab: its process is gone, or it is
/// this process's and not in use (an earlier process had our pid, or a teardown failed).
fn is_stale(pid: u32, prefix: &str, live: &BTreeSet<String>) -> bool {
    if pid == std::process::id() {
        !live.contains(prefix)
    } else {
        !Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// [`is_stale`] for a bare prefix; `false` if it is not a lab prefix at all.
pub(crate) fn is_stale_prefix(prefix: &str) -> bool {
    let live = live_prefixes();
    prefix_pid(prefix).is_some_and(|pid| is_stale(pid, prefix, &live))
}

/// Deletes lab namespaces left behind by processes that no longer exist (and any process still
/// running inside them). Namespaces of live labs, in this process or another, are left alone.
/// Returns the names deleted.
pub(crate) fn sweep_stale_namespaces() -> Result<Vec<String>> {
    let stale: Vec<String> = {
        let live = live_prefixes();
        names()?
            .into_iter()
            .filter(|n| owner(n).is_some_and(|(pid, prefix)| is_stale(pid, prefix, &live)))
            .collect()
    };
    let mut errors = Vec::new();
    for n in &stale {
        if let Err(e) = delete(n) {
            errors.push(format!("{n}: {e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("could not sweep: {}", errors.join("; "));
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_per_process() {
        let a = claim_prefix("q").unwrap();
        let b = claim_prefix("q").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, format!("sl{}q", std::process::id()));
        assert!(
            b.starts_with(&a) && owner(&format!("{b}-lb")).is_some(),
            "{b}"
        );
        release_prefix(&a);
        assert_eq!(claim_prefix("q").unwrap(), a);
        release_prefix(&a);
        release_prefix(&b);
    }

    #[test]
    fn owners() {
        assert_eq!(owner("sl1234-sw"), Some((1234, "sl1234")));
        assert_eq!(owner("sl1234t-b12"), Some((1234, "sl1234t")));
        assert_eq!(owner("sl99demox2-client"), Some((99, "sl99demox2")));
        for other in [
            "sl1234", "sl-sw", "slx1-sw", "sl12-b", "sl12-bx", "sl12-eth", "foo-lb",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }
}
