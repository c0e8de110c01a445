//! SIGINT/SIGTERM handling: the first signal only sets a flag, so that the command in progress
//! can stop and clean up (the demo detaches XDP programs and deletes its namespaces); a second
//! Ctrl-C (SIGINT) exits at once. A repeated SIGTERM does not: supervisors (`timeout`, CI
//! runners, a `kill` of the process group) often deliver several, and none of them means "skip
//! the cleanup"; SIGKILL is there for that.
//!
//! A flag polled by the main thread rather than a cleanup closure run from a handler thread:
//! cleanup needs the objects the main thread owns (the lab, process guards), and doing it in one
//! place keeps the teardown order the same on success, failure and interruption.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};

/// Signals received so far.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);
/// SIGINTs received so far.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

/// The error a command returns when it stopped because of a signal; `main` exits with 130.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

const FIRST: &[u8] =
    b"\nxtask: interrupted; cleaning up (press Ctrl-C again to quit without cleaning up)\n";
const SECOND: &[u8] = b"\nxtask: interrupted twice; quitting without cleaning up\n";

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: atomics, write(2) and _exit(2).
    let first = RECEIVED.fetch_add(1, Ordering::SeqCst) == 0;
    let again = sig == libc::SIGINT && INTERRUPTS.fetch_add(1, Ordering::SeqCst) > 0;
    let msg = if again {
        SECOND
    } else if first {
        FIRST
    } else {
        return;
    };
    // SAFETY: writing a static buffer to fd 2 and _exit are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        if again {
            libc::_exit(130);
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM. Children get the default disposition back on
/// exec, so they still die of a terminal's Ctrl-C (they share our process group).
pub fn install() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler is async-signal-safe
        // and SA_RESTART keeps blocking calls in std from failing with EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!(
                "installing the handler for signal {sig}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    RECEIVED.load(Ordering::SeqCst) > 0
}

/// `Err(Interrupted)` once a signal arrived: call it between steps.
pub fn check() -> Result<()> {
    if interrupted() {
        return Err(Interrupted.into());
    }
    Ok(())
}
