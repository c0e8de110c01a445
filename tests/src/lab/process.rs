//! A guard for a long-running program started in a lab host: stops and reaps it on drop.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cmd;
use super::netns::TERM_GRACE;

/// How long a SIGKILLed process may take to be reaped before we report it stuck.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// A program running in a lab host, with stdout and stderr going to [`Process::log_path`].
///
/// It runs in a process group of its own: stopping it signals the whole group, so helpers it
/// forked go too. Dropping the guard stops it (SIGTERM, SIGKILL after 2 s) and reaps it.
///
/// It also gets SIGTERM if the *thread* that spawned it exits (PR_SET_PDEATHSIG, which covers
/// the caller being SIGKILLed): spawn from a thread that outlives the guard, e.g. the test's or
/// `main`'s own thread, not from a short-lived helper thread.
#[derive(Debug)]
pub struct Process {
    child: Child,
    label: String,
    log_path: PathBuf,
    /// Set once reaped; from then on the pid may belong to someone else and is never signalled.
    status: Option<ExitStatus>,
}

impl Process {
    pub(crate) fn spawn(cmd: &mut Command, label: String, log_path: PathBuf) -> Result<Process> {
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating log {}", log_path.display()))?;
        let what = cmd::describe(cmd);
        // SAFETY: getpid is async-signal-safe; the pid is read before forking.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the hook only calls async-signal-safe functions (prctl, getppid) and allocates
        // nothing.
        unsafe {
            cmd.pre_exec(move || {
                // If we die without running destructors (SIGKILL, abort), the child gets SIGTERM
                // instead of running on in a namespace nobody will clean up until the next sweep.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // We may have died before the prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating log fd")?)
            .stderr(log)
            // Its own group: Ctrl-C in the caller's terminal does not reach it, so the caller
            // decides the order of shutdown; kill() signals the group.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start `{what}`"))?;
        Ok(Process {
            child,
            label,
            log_path,
            status: None,
        })
    }

    /// The pid (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `<host>:<program>`, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log so far (empty if unreadable).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `sig` (e.g. `libc::SIGHUP`) to the process itself, not its group.
    pub fn signal(&self, sig: i32) -> Result<()> {
        if self.status.is_some() {
            bail!(
                "{} already exited; not signalling pid {}",
                self.label,
                self.pid()
            );
        }
        // Not reaped yet, so the pid is still ours even if the process has exited (zombie).
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(self.pid() as i32, sig) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("signal {sig} to {}", self.label));
        }
        Ok(())
    }

    /// The exit status if it has exited (reaping it), else `None`.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // An error here (ECHILD) cannot happen for a child we own and have not reaped.
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = cmd::wait_until(&mut self.child, Instant::now() + timeout)
                .ok()
                .flatten();
        }
        self.status
    }

    /// Stops it: SIGTERM to its group, SIGKILL after 2 s, then reaps it. Idempotent.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        for (sig, grace) in [(libc::SIGTERM, TERM_GRACE), (libc::SIGKILL, REAP_GRACE)] {
            if let Some(s) = self.try_status() {
                return Ok(s);
            }
            self.signal_group(sig);
            if let Some(s) = self.wait_timeout(grace) {
                return Ok(s);
            }
        }
        bail!("{} (pid {}) survives SIGKILL", self.label, self.pid())
    }

    fn signal_group(&self, sig: i32) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) has no memory-safety preconditions. The group exists while its leader
        // is unreaped; fall back to the leader alone should it not.
        unsafe {
            if libc::kill(-pid, sig) != 0 {
                libc::kill(pid, sig);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("sheave lab: {e:#}");
        }
    }
}
