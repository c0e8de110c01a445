//! Exec check: a command, run without a shell, exits with status 0.
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{Finding, down, os_message, up};
use crate::health::spec::ExecProbe;

/// Runs the command until it exits or `deadline` passes. The deadline is enforced here rather
/// than only by the caller's timeout, so that a command that overruns is killed and reaped
/// before the check returns: dropping it would leave the reaping to the runtime's background
/// cleanup and any processes it started running on.
pub(super) async fn check(p: &ExecProbe, backend: IpAddr, port: u16, deadline: Instant) -> Finding {
    let Some((program, args)) = p.command.split_first() else {
        return down("empty command");
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env("SHEAVE_BACKEND", backend.to_string())
        .env("SHEAVE_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills what it started too (a script's children).
        .process_group(0)
        // The backstop if this future is dropped before it could kill the command itself.
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return down(format!("cannot run {program}: {}", os_message(&e))),
    };
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => judge(status),
        Ok(Err(e)) => down(format!("cannot wait for {program}: {}", os_message(&e))),
        Err(_) => {
            kill(&mut child).await;
            down("timeout")
        }
    }
}

fn judge(status: ExitStatus) -> Finding {
    match (status.code(), status.signal()) {
        (Some(0), _) => up(),
        (Some(code), _) => down(format!("exit status {code}")),
        (None, Some(signal)) => down(format!("killed by signal {signal}")),
        (None, None) => down(format!("ended: {status}")),
    }
}

/// Kills the command's process group, then the command itself, and reaps it.
async fn kill(child: &mut Child) {
    // `id` is `None` only once the child is reaped; until then its pid, which is also its
    // process group's id, cannot be reused, so this signals nothing but its own group.
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) has no memory effects; a failure (the group is already gone) is
        // harmless.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    // Sends SIGKILL again (harmless) and waits for the exit, reaping it. An error means it was
    // already reaped.
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::{Outcome, Verdict, run};
    use super::*;
    use crate::health::spec::Probe;

    const TIMEOUT: Duration = Duration::from_secs(2);
    const BACKEND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    async fn exec(command: &[&str], port: u16, timeout: Duration) -> Outcome {
        let probe = Probe::Exec(ExecProbe {
            command: command.iter().map(|s| s.to_string()).collect(),
        });
        run(&probe, BACKEND, port, timeout).await
    }

    #[tokio::test]
    async fn exit_status_decides() {
        let out = exec(&["/bin/true"], 80, TIMEOUT).await;
        assert_eq!((out.verdict, out.detail.as_str()), (Verdict::Up, "ok"));
        let out = exec(&["/bin/false"], 80, TIMEOUT).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "exit status 1")
        );
        let out = exec(&["sh", "-c", "kill -9 $$"], 80, TIMEOUT).await;
        assert_eq!(out.detail, "killed by signal 9");
    }

    #[tokio::test]
    async fn command_sees_backend_and_port() {
        let script = r#"test "$SHEAVE_PORT" = 8080 && test "$SHEAVE_BACKEND" = 127.0.0.1"#;
        let out = exec(&["sh", "-c", script], 8080, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Up, "{out:?}");
        let out = exec(&["sh", "-c", script], 9090, TIMEOUT).await;
        assert_eq!(out.detail, "exit status 1");
    }

    #[tokio::test]
    async fn missing_program_cannot_run() {
        let out = exec(&["/nonexistent/sheave-probe"], 80, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(
            out.detail,
            "cannot run /nonexistent/sheave-probe: No such file or directory"
        );
        let out = exec(&[], 80, TIMEOUT).await;
        assert_eq!(out.detail, "empty command");
    }

    #[tokio::test]
    async fn slow_command_is_killed_at_timeout() {
        let start = std::time::Instant::now();
        let out = exec(&["sleep", "5"], 80, Duration::from_millis(200)).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "timeout")
        );
        // The kill itself takes microseconds; the margin is for a loaded machine.
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }

    /// The process's state letter from /proc (`Z`: zombie), or `None` if it is gone.
    fn state(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    #[tokio::test]
    async fn timed_out_command_leaves_no_process() {
        let pids = std::env::temp_dir().join(format!("sheave-exec-probe-{}", std::process::id()));
        let pids_arg = pids.to_str().unwrap();
        // The shell records its own pid and its background child's, then waits.
        let script = r#"echo $$ > "$0"; sleep 5 & echo $! >> "$0"; wait"#;
        let out = exec(
            &["sh", "-c", script, pids_arg],
            80,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(out.detail, "timeout");
        let recorded = std::fs::read_to_string(&pids).unwrap();
        let _ = std::fs::remove_file(PathBuf::from(&pids));
        let recorded: Vec<&str> = recorded.split_whitespace().collect();
        assert_eq!(recorded.len(), 2, "{recorded:?}");
        // The command itself is reaped before the check returns.
        assert_eq!(state(recorded[0]), None, "shell {}", recorded[0]);
        // What it started was killed: gone, or a zombie for its new parent to reap.
        let gone = async {
            while !matches!(state(recorded[1]), None | Some('Z')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(1), gone).await;
        assert!(
            waited.is_ok(),
            "sleep {} still {:?}",
            recorded[1],
            state(recorded[1])
        );
    }
}
