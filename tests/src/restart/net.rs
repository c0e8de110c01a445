//! Socket helpers shared by the held streams and the churn: error kinds in the vocabulary of
//! `sheave-lab-client`, and the kernel's retransmission count of a socket (a segment the load
//! balancer lost, or delayed past the retransmission timer, is retransmitted by the client, so
//! this is the client-side count of packets lost on the way through the LB).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Largest response a short request reads; the lab server's are a few dozen bytes.
const MAX_RESPONSE: usize = 16 * 1024;

/// `<phase>_<what>`, e.g. `connect_refused`, `read_reset`.
pub fn kind(phase: &str, e: &io::Error) -> String {
    use io::ErrorKind as K;
    let what = match e.kind() {
        K::ConnectionRefused => "refused",
        K::TimedOut | K::WouldBlock => "timeout",
        K::ConnectionReset => "reset",
        K::ConnectionAborted => "aborted",
        K::BrokenPipe => "broken_pipe",
        K::HostUnreachable => "host_unreachable",
        K::NetworkUnreachable => "network_unreachable",
        K::UnexpectedEof => "eof",
        _ => return format!("{phase}_os_{}", e.raw_os_error().unwrap_or(0)),
    };
    format!("{phase}_{what}")
}

/// Segments the kernel retransmitted on `s` so far (SYNs included); 0 if it cannot tell.
pub fn retransmits(s: &TcpStream) -> u32 {
    // SAFETY: tcp_info is plain data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc == 0 { info.tcpi_total_retrans } else { 0 }
}

/// One `GET /` to `target` within `timeout`: the backend's name (first body line) or an error
/// kind, plus the socket's retransmissions. Must run on a thread in the client's namespace.
pub fn get(target: SocketAddr, timeout: Duration) -> (Result<String, String>, u32) {
    let deadline = Instant::now() + timeout;
    // A zero timeout means "block forever" to the socket API; never pass one.
    let left = || Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
    let Some(first) = left() else {
        return (Err("connect_timeout".into()), 0);
    };
    let mut s = match TcpStream::connect_timeout(&target, first) {
        Ok(s) => s,
        Err(e) => return (Err(kind("connect", &e)), 0),
    };
    let result = exchange(&mut s, target, left);
    let retrans = retransmits(&s);
    (result, retrans)
}

fn exchange(
    s: &mut TcpStream,
    target: SocketAddr,
    left: impl Fn() -> Option<Duration>,
) -> Result<String, String> {
    let _ = s.set_nodelay(true);
    let req = format!("GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    s.set_write_timeout(left())
        .and_then(|()| s.write_all(req.as_bytes()))
        .map_err(|e| kind("write", &e))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    loop {
        s.set_read_timeout(Some(left().ok_or("read_timeout")?))
            .map_err(|e| kind("read", &e))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(kind("read", &e)),
        }
        if buf.len() > MAX_RESPONSE {
            return Err("response_too_large".into());
        }
    }
    backend_of(&buf)
}

/// The backend's name from a complete `200` response.
fn backend_of(buf: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(if buf.is_empty() {
            "empty_response".into()
        } else {
            "truncated_response".into()
        });
    };
    match head.split_whitespace().nth(1) {
        Some("200") => {}
        other => return Err(format!("status_{}", other.unwrap_or(""))),
    }
    match body.lines().next().map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err("empty_body".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nb2\n";
        assert_eq!(backend_of(ok), Ok("b2".into()));
        let busy = b"HTTP/1.1 503 Busy\r\n\r\nx\n";
        assert_eq!(backend_of(busy), Err("status_503".into()));
        assert_eq!(backend_of(b""), Err("empty_response".into()));
        assert_eq!(
            backend_of(b"HTTP/1.1 200"),
            Err("truncated_response".into())
        );
        assert_eq!(
            backend_of(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err("empty_body".into())
        );
    }
}
