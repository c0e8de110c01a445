//! Running programs (streamed or captured), where the workspace is, and small host facts.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::signals;

/// Where sheave-tests' `bin_path` looks for sheaved, sheave and the lab's programs (its own
/// constant is private).
pub const BIN_DIR_ENV: &str = "SHEAVE_BIN_DIR";

/// How often a streamed child is polled, so that a SIGTERM sent to xtask alone is forwarded.
const POLL: Duration = Duration::from_millis(50);

/// The cargo workspace xtask belongs to.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    /// Cargo's target directory (`target/` unless configured otherwise).
    pub target: PathBuf,
}

impl Workspace {
    /// Finds the workspace (xtask's parent directory) and asks cargo for its target directory,
    /// so that `CARGO_TARGET_DIR` or a configured `build.target-dir` is honoured.
    pub fn locate() -> Result<Workspace> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let mut c = cargo(&root);
        c.args(["metadata", "--no-deps", "--format-version", "1"]);
        let out = capture(&mut c)?;
        if !out.status.success() {
            bail!("`cargo metadata` failed: {}", out.stderr.trim());
        }
        let meta: serde_json::Value =
            serde_json::from_str(&out.stdout).context("parsing `cargo metadata` output")?;
        let target = meta["target_directory"]
            .as_str()
            .context("`cargo metadata` has no target_directory")?
            .into();
        Ok(Workspace { root, target })
    }

    /// Where `cargo build` (dev profile, host target) leaves the binaries.
    pub fn bin_dir(&self) -> PathBuf {
        self.target.join("debug")
    }

    /// `cargo` run at the workspace root.
    pub fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = cargo(&self.root);
        c.args(args);
        c
    }
}

/// `cargo` through PATH, i.e. the rustup proxy: it honours RUSTUP_TOOLCHAIN, which rustup sets
/// for us, so `cargo +nightly xtask ...` builds everything with nightly.
fn cargo(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(dir);
    c
}

/// `$CARGO_HOME/bin` (default `~/.cargo/bin`): where rustup and `cargo install` put programs.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|h| h.join("bin"))
}

static ADDED_TO_PATH: AtomicBool = AtomicBool::new(false);

/// Where the lab's admin tools live (sysctl, ethtool); minimal CI environments may lack them.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Puts `$CARGO_HOME/bin` at the front of PATH unless it is already there, so that every child
/// finds bpf-linker and the rustup proxies (CI shells and `sudo` often lack it), and the sbin
/// directories at the end, where the lab's `sysctl` and `ethtool` live.
///
/// # Safety
/// Mutates the environment: call it before any thread is started.
pub unsafe fn prepare_path() {
    let old: Vec<PathBuf> = env::split_paths(&env::var_os("PATH").unwrap_or_default()).collect();
    let mut new = old.clone();
    if let Some(bin) = cargo_bin_dir().filter(|b| !old.contains(b)) {
        new.insert(0, bin);
        ADDED_TO_PATH.store(true, Ordering::Relaxed);
    }
    new.extend(
        SBIN_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|d| !old.contains(d) && d.is_dir()),
    );
    if new != old
        && let Ok(joined) = env::join_paths(new)
    {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { env::set_var("PATH", joined) };
    }
}

/// Whether [`prepare_path`] had to add it.
pub fn added_cargo_bin_to_path() -> bool {
    ADDED_TO_PATH.load(Ordering::Relaxed)
}

/// Whether `program` is an executable file in some PATH directory.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join(program)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A readable rendering of a command line, with the environment it sets explicitly.
pub fn describe(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Runs `cmd` with its output going straight to ours, after printing it. A non-zero exit, or an
/// interruption (forwarded to the child as SIGTERM), is an error.
pub fn run(cmd: &mut Command) -> Result<Duration> {
    let what = describe(cmd);
    eprintln!("$ {what}");
    let start = Instant::now();
    let status = stream(cmd).with_context(|| format!("`{what}`"))?;
    if signals::interrupted() {
        return Err(signals::Interrupted.into());
    }
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(start.elapsed())
}

/// What [`run_tee`] saw: how the command ended and everything it wrote to stdout.
pub struct Teed {
    pub elapsed: Duration,
    pub status: ExitStatus,
    pub stdout: String,
}

/// Like [`run`], but also hands back everything the command wrote to stdout (shown as it comes),
/// whether it succeeded or not: a failed `cargo test` still reports the counts of every binary
/// that ran. Only failing to start it, or an interruption, is an error.
pub fn run_tee(cmd: &mut Command) -> Result<Teed> {
    let what = describe(cmd);
    eprintln!("$ {what}");
    let start = Instant::now();
    cmd.stdout(Stdio::piped());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let status = stream_with(cmd, move |child| {
        let out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            use std::io::BufRead as _;
            let mut all = String::new();
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("{line}");
                all.push_str(&line);
                all.push('\n');
            }
            let _ = tx.send(all);
        });
    })
    .with_context(|| format!("`{what}`"))?;
    let stdout = rx.recv().unwrap_or_default();
    if signals::interrupted() {
        return Err(signals::Interrupted.into());
    }
    Ok(Teed {
        elapsed: start.elapsed(),
        status,
        stdout,
    })
}

fn stream(cmd: &mut Command) -> Result<ExitStatus> {
    stream_with(cmd, |_| {})
}

fn stream_with(
    cmd: &mut Command,
    on_spawn: impl FnOnce(&mut std::process::Child),
) -> Result<ExitStatus> {
    signals::check()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start it")?;
    on_spawn(&mut child);
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            return Ok(status);
        }
        // A terminal's Ctrl-C reaches the child already (same process group); a SIGTERM sent to
        // xtask alone (CI timeout, `kill`) must be passed on or the child would run on.
        if signals::interrupted() && !forwarded {
            forwarded = true;
            // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet,
            // so its pid cannot have been reused.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        thread::sleep(POLL);
    }
}

/// What a captured command did.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a short command quietly (stdin closed), capturing its output. Only failing to start it
/// is an error; look at `status` for the rest.
pub fn capture(cmd: &mut Command) -> Result<Captured> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    Ok(Captured {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `1.2s`, `3m04s`: short durations for progress lines and summaries.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_with_env_and_quotes() {
        let mut c = Command::new("cargo");
        c.env("A", "1").args(["x", "a b", ""]);
        assert_eq!(describe(&c), "A=1 cargo x 'a b' ''");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(1234)), "1.2s");
        assert_eq!(human(Duration::from_secs(184)), "3m04s");
    }
}
