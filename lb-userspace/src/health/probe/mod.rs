//! One health check against one backend: [`run`] takes a validated [`Probe`] and says whether
//! the backend is up, down or going away, with a short reason.
//!
//! Every probe is bounded by one deadline, so a scheduler can run thousands of them without one
//! hung backend delaying the rest, and no probe panics whatever the peer sends: a misbehaving
//! backend is a `Down` with a reason, never a crashed daemon.
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::spec::Probe;

mod exec;
mod http;
mod tcp;
mod tls;
mod udp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Up,
    Down,
    /// The backend answers that it is shutting down: drain it rather than count a failure.
    GoingAway,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Short, stable text for logs and transition reasons; identical failures give identical
    /// text so the caller can say "connect refused ×3". Examples: "ok", "connect refused",
    /// "timeout", "connection reset", "no route to host", "HTTP 503",
    /// "HTTP 500 not in 200-399", "body lacks \"ok\"", "TLS handshake failed: …", "no reply",
    /// "reply lacks expected bytes", "exit status 1", "killed by signal 9",
    /// "cannot run /x: No such file or directory".
    pub detail: String,
    /// Time the probe took (until verdict).
    pub latency: Duration,
}

/// What a probe found, before the time it took is added.
type Finding = (Verdict, String);

fn up() -> Finding {
    (Verdict::Up, "ok".to_string())
}

fn down(detail: impl Into<String>) -> Finding {
    (Verdict::Down, detail.into())
}

/// Time an exec probe gets past the deadline to kill and reap its command, so a timed-out
/// command never outlives the check (see [`exec`]). Killing and reaping takes microseconds;
/// this only bounds a pathological case.
const EXEC_REAP_GRACE: Duration = Duration::from_millis(50);

/// Run one check against backend address `backend` on `port`. It never takes (much) longer
/// than `timeout`: connect, TLS, request, body and command all run inside it, and on expiry the
/// verdict is `Down` with detail "timeout" ("no reply" for UDP, which only waits for the
/// answer). Never panics on any input or peer behaviour.
pub async fn run(probe: &Probe, backend: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let deadline = start + timeout;
    let check = async {
        match probe {
            Probe::Tcp => tcp::check(backend, port).await,
            Probe::Http(h) => http::check(h, backend, port).await,
            Probe::Udp(u) => udp::check(u, backend, port).await,
            Probe::Exec(e) => exec::check(e, backend, port, deadline).await,
        }
    };
    // An exec probe enforces the deadline itself so it can kill and reap its command; the outer
    // bound is only a backstop for it.
    let bound = match probe {
        Probe::Exec(_) => deadline + EXEC_REAP_GRACE,
        _ => deadline,
    };
    let (verdict, detail) = match tokio::time::timeout_at(bound, check).await {
        Ok(finding) => finding,
        Err(_) if matches!(probe, Probe::Udp(_)) => down("no reply"),
        Err(_) => down("timeout"),
    };
    Outcome {
        verdict,
        detail,
        latency: start.elapsed(),
    }
}

/// Whether `needle` occurs in `haystack` (an empty needle always does).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A socket error as stable text: the well-known kinds by a fixed name, anything else by the
/// system's message without the varying "(os error N)" decoration.
fn io_detail(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let fixed = match e.kind() {
        // On a connected UDP socket this is an ICMP port unreachable: the same meaning.
        K::ConnectionRefused => "connect refused",
        K::ConnectionReset | K::BrokenPipe => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "no route to host",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrNotAvailable => "address not available",
        K::TimedOut => "timeout",
        K::UnexpectedEof => "connection closed",
        _ => return os_message(e),
    };
    fixed.to_string()
}

/// The system's message for an error ("No such file or directory"), without Rust's
/// " (os error 2)" suffix, which only repeats the code.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_have_stable_names() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_detail(&refused), "connect refused");
        let unreach = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(io_detail(&unreach), "no route to host");
        let other = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_detail(&other), "No such file or directory");
        let custom = io::Error::other("weird");
        assert_eq!(io_detail(&custom), "weird");
    }
}
