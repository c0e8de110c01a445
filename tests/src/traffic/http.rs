//! One short HTTP/1.1 request to a lab server, as the load generators make them: which backend
//! answered (the first line of the body), or what went wrong, in the error-kind vocabulary of
//! `sheave-lab-client` (`connect_refused`, `read_reset`, `connect_timeout`, ...), plus the
//! kernel's retransmission count of the socket: a segment the load balancer lost, or delayed
//! past the retransmission timer, is retransmitted by the client, so this is the client-side
//! count of packets lost on the way through the LB.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Largest response read; the lab server's are a few dozen bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// How one [`get`] went.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The local port, once one was bound (even if the connect then failed): it names the flow
    /// in `sheave explain`.
    pub port: Option<u16>,
    /// The backend's name, or the error kind.
    pub backend: Result<String, String>,
    /// Segments the client retransmitted on the connection (SYNs included); 0 if it never
    /// connected.
    pub retransmits: u32,
}

/// `GET /` to `target`, all of it within `timeout`. Must run on a thread inside the client's
/// network namespace.
pub fn get(target: SocketAddr, timeout: Duration) -> Reply {
    let mut port = None;
    let mut retrans = 0;
    let backend = exchange(target, timeout, &mut port, &mut retrans);
    Reply {
        port,
        backend,
        retransmits: retrans,
    }
}

fn exchange(
    target: SocketAddr,
    timeout: Duration,
    port: &mut Option<u16>,
    retrans: &mut u32,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "block forever" to the socket API; never pass one.
        (!d.is_zero()).then_some(d)
    };
    // socket2 rather than TcpStream::connect_timeout: the socket outlives a failed connect, so
    // the port a refused or timed-out attempt used is known too.
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|e| kind("socket", &e))?;
    let connected = sock.connect_timeout(&target.into(), left().ok_or("connect_timeout")?);
    *port = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .filter(|&p| p != 0);
    connected.map_err(|e| kind("connect", &e))?;
    let mut s: TcpStream = sock.into();
    let result = request(&mut s, target, left);
    *retrans = retransmits(&s);
    result
}

/// Sends the request on a connected `s` and reads the close-delimited response.
fn request(
    s: &mut TcpStream,
    target: SocketAddr,
    left: impl Fn() -> Option<Duration>,
) -> Result<String, String> {
    let _ = s.set_nodelay(true);
    let req = format!("GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    s.set_write_timeout(left())
        .and_then(|()| s.write_all(req.as_bytes()))
        .map_err(|e| kind("write", &e))?;
    read_response(s, left)
}

/// Reads the response on `s`, each read bounded by what `left` says remains, until its
/// announced body is complete or the server closes: the backend's name (first body line) or the
/// error kind.
pub fn read_response(
    s: &mut TcpStream,
    left: impl Fn() -> Option<Duration>,
) -> Result<String, String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
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
        // No need to wait for the server's FIN once the announced body is complete.
        if let Some(Ok(_)) = parse(&buf, false) {
            break;
        }
    }
    match parse(&buf, true) {
        Some(r) => r,
        None => Err(if buf.is_empty() {
            "empty_response"
        } else {
            "truncated_response"
        }
        .into()),
    }
}

/// Parses a response. `None` if more bytes are needed; at EOF (`eof`) a close-delimited body
/// is complete.
pub fn parse(buf: &[u8], eof: bool) -> Option<Result<String, String>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let body = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .split_whitespace()
        .nth(1)
        .map(str::parse::<u16>);
    let Some(Ok(status)) = status else {
        return Some(Err("bad_response".into()));
    };
    let length = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>())
    });
    let body = match length {
        Some(Ok(n)) if body.len() >= n => &body[..n],
        Some(Ok(_)) if eof => return Some(Err("truncated_body".into())),
        Some(Ok(_)) => return None,
        Some(Err(_)) => return Some(Err("bad_response".into())),
        None if eof => body,
        None => return None,
    };
    if status != 200 {
        return Some(Err(format!("status_{status}")));
    }
    let name = String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Some(if name.is_empty() {
        Err("empty_body".into())
    } else {
        Ok(name)
    })
}

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
        K::AddrNotAvailable => "addr_not_available",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Option<Result<String, String>> {
        Some(Ok(s.into()))
    }

    #[test]
    fn parses_responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nb1\n";
        assert_eq!(parse(r, false), ok("b1"));
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nb";
        assert_eq!(parse(partial, false), None);
        assert_eq!(parse(partial, true), Some(Err("truncated_body".into())));
        let close_delimited = b"HTTP/1.1 200 OK\r\n\r\nb2 0\nb2 1\n";
        assert_eq!(parse(close_delimited, false), None);
        assert_eq!(parse(close_delimited, true), ok("b2 0"));
        let busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n";
        assert_eq!(parse(busy, false), Some(Err("status_503".into())));
        assert_eq!(
            parse(b"junk\r\n\r\n", true),
            Some(Err("bad_response".into()))
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n", true), None);
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n\r\n", true),
            Some(Err("empty_body".into()))
        );
    }
}
