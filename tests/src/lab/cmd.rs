//! Running short external commands (ip, ethtool, sysctl, ...) with a deadline and captured output.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a configuration command (ip, ethtool, sysctl) may take before we call it hung.
pub(crate) const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);

/// After the child exits, how long to wait for its pipes to close: a daemonised grandchild may
/// hold them open forever, and its output is not what we were waiting for.
const PIPE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A readable rendering of a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with stdin closed, capturing stdout and stderr; kills it after `timeout`.
pub(crate) fn capture(cmd: &mut Command, timeout: Duration) -> Result<Captured> {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let Some(status) = wait_until(&mut child, Instant::now() + timeout)? else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("`{what}` did not finish within {timeout:?}; killed it");
    };
    let grace = Instant::now() + PIPE_GRACE;
    Ok(Captured {
        status,
        stdout: collect(&out, grace),
        stderr: collect(&err, grace),
    })
}

/// Like [`capture`], but a non-zero exit is an error carrying the command line and stderr.
/// Returns stdout.
pub(crate) fn checked(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let what = describe(cmd);
    let c = capture(cmd, timeout)?;
    if !c.status.success() {
        bail!("`{what}` failed ({}): {}", c.status, c.stderr.trim());
    }
    Ok(c.stdout)
}

/// Polls `child` until it exits or `deadline` passes (then `None`). Polling starts at 1 ms so
/// that the many few-millisecond `ip` calls of a lab setup are not slowed down.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error just truncates the output; the exit status tells what happened.
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn collect(rx: &Receiver<Vec<u8>>, deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    let bytes = rx.recv_timeout(left).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_checks() {
        let out = checked(Command::new("sh").args(["-c", "echo hi"]), CONFIG_TIMEOUT).unwrap();
        assert_eq!(out, "hi\n");
        let err = checked(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            CONFIG_TIMEOUT,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("boom") && msg.contains("sh -c"), "{msg}");
    }

    #[test]
    fn times_out() {
        let t = Instant::now();
        let err = capture(Command::new("sleep").arg("5"), Duration::from_millis(100)).unwrap_err();
        assert!(format!("{err}").contains("did not finish"));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
