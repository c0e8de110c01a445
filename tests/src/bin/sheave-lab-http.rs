//! `sheave-lab-http`: a tiny HTTP/1.1 server that names itself, run on lab backends.
//!
//! ```text
//! sheave-lab-http --name b1 [--listen [::]:80] [--verbose] [--max-conns 256]
//!                 [--health-file PATH]
//! ```
//!
//! * Any `GET`/`HEAD` path: `200 OK`, body `<name>\n`, `Content-Length`, `Connection: close`.
//! * `GET /stream?seconds=N&interval_ms=M`: `200 OK` without `Content-Length`; one line
//!   `<name> <seq>\n` (seq from 0) right away and then every M ms for N seconds, then close. The
//!   body is close-delimited (no chunked encoding), so a client just reads lines until EOF.
//!   Defaults: N = 10, M = 1000; bounds: N ≤ 3600, 10 ≤ M ≤ 60000.
//! * `GET /echo`: `200 OK` head without `Content-Length`, then every line the client sends
//!   (at most 1 KiB, within 30 s of the last) is answered with `<name> <line>\n`, until the
//!   client half-closes. Client data crosses the load balancer (replies do not: direct server
//!   return), so a stream that keeps echoing proves the LB keeps sending it to the same
//!   backend. The client must wait for the head before sending lines (no pipelining).
//! * `GET /sink?bytes=N`: `200 OK` head without `Content-Length`, then the server reads exactly
//!   N bytes from the client (N ≤ 1 GiB; the client waits for the head before sending them, as
//!   for `/echo`) and answers one line `<name> <N> <fnv1a-64 of the bytes, hex>`, then closes: a
//!   bulk upload through the load balancer, checked end to end.
//! * `GET /bytes?n=N`: `200 OK` with `Content-Length: N` and N bytes of `bulk::pattern`
//!   (N ≤ 1 GiB):
//!   a bulk download, which goes straight from the backend to the client (direct server return).
//! * With `--health-file PATH`, `GET /health` answers what the file says, read afresh on every
//!   request, so a test can steer a health check without restarting anything: no file or
//!   `200` → `200 OK` body `ok`; another status number → that status, body `unhealthy`;
//!   `flap MS` → 200 and 500 alternating every MS milliseconds of wall-clock time. Without the
//!   flag `/health` is an ordinary path.
//!
//! A `[::]` listener is dual-stack (IPV6_V6ONLY off), so it also takes IPv4. One thread per
//! connection, at most `--max-conns` at once: at the cap the server stops accepting until a
//! connection ends, so extra clients wait in the listen backlog (latency, not errors).
//! SIGTERM or SIGINT: stop accepting, end streams, exit 0 within about a second.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sheave_tests::traffic::bulk;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Bound on receiving the request head (slow or silent clients).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each write: a client that stops reading must not pin a thread.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to drain the client's side after responding (see `linger_close`).
const LINGER: Duration = Duration::from_secs(1);
/// How often the accept loop and streams look at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// On stop, how long to let open connections finish.
const DRAIN_ON_STOP: Duration = Duration::from_secs(1);
/// An `/echo` client silent this long is gone; its thread is freed.
const ECHO_IDLE: Duration = Duration::from_secs(30);
/// Longest `/echo` line; a longer one ends the stream.
const MAX_ECHO_LINE: usize = 1024;

#[derive(Parser, Debug)]
#[command(about = "Lab HTTP server that answers with its own name")]
struct Args {
    /// Name returned in every response body (e.g. the backend's role, b1).
    #[arg(long)]
    name: String,
    /// Listen address; an IPv6 one (like the default) also accepts IPv4.
    #[arg(long, default_value = "[::]:80")]
    listen: SocketAddr,
    /// Log one line per connection to stderr.
    #[arg(long)]
    verbose: bool,
    /// Most connections handled at once (one thread each); more wait to be accepted.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_conns: u32,
    /// What `GET /health` answers is read from this file (see above).
    #[arg(long)]
    health_file: Option<PathBuf>,
}

/// `--health-file`, set once in `main`; a static so that handlers need no extra argument.
static HEALTH_FILE: OnceLock<PathBuf> = OnceLock::new();

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.name.contains(['\r', '\n']) {
        eprintln!("sheave-lab-http: --name must be a single line");
        return ExitCode::from(2);
    }
    if let Some(f) = &args.health_file {
        let _ = HEALTH_FILE.set(f.clone());
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let handler = on_stop_signal as extern "C" fn(libc::c_int);
        // SAFETY: installing a handler that only stores to an atomic.
        unsafe { libc::signal(sig, handler as *const () as libc::sighandler_t) };
    }
    let listener = match bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sheave-lab-http: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "sheave-lab-http: {} listening on {}",
        args.name, args.listen
    );
    match serve(&listener, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sheave-lab-http: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr`; for IPv6 with IPV6_V6ONLY explicitly off (whatever net.ipv6.bindv6only says),
/// which std cannot express.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let SocketAddr::V6(a) = addr else {
        return TcpListener::bind(addr);
    };
    // SAFETY: plain socket syscalls on an fd we own (OwnedFd closes it on every error path);
    // the sockaddr is a zeroed, fully initialised sockaddr_in6 passed with its exact size.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
        let sa = sockaddr_in6(&a);
        let len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        if libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::listen(fd.as_raw_fd(), 1024) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpListener::from(fd))
    }
}

fn sockaddr_in6(a: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = a.port().to_be();
    sa.sin6_flowinfo = a.flowinfo().to_be();
    sa.sin6_addr.s6_addr = a.ip().octets();
    sa.sin6_scope_id = a.scope_id();
    sa
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, val: libc::c_int) -> io::Result<()> {
    let len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int with its exact size.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (&raw const val).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Accepts until stopped. Waits in poll(2) with a timeout rather than a blocking accept so the
/// stop flag set by the signal handler is seen promptly.
fn serve(listener: &TcpListener, args: &Args) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let name: Arc<str> = args.name.as_str().into();
    while !stopping() {
        // Backpressure at the cap: leave new connections in the backlog rather than failing them.
        if active.load(Ordering::Acquire) >= args.max_conns as usize {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as libc::c_int) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        while active.load(Ordering::Acquire) < args.max_conns as usize {
            match listener.accept() {
                Ok((stream, peer)) => dispatch(stream, peer, &name, args.verbose, &active),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Per-connection failures (ECONNABORTED, EMFILE...) must not kill the server.
                Err(e) => {
                    eprintln!("sheave-lab-http: accept: {e}");
                    thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
    let deadline = Instant::now() + DRAIN_ON_STOP;
    while active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if args.verbose {
        eprintln!("sheave-lab-http: stopped");
    }
    Ok(())
}

/// Decrements the active-connection count when a handler ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Hands a connection to a new thread. Only the accept loop increments `active`, so checking
/// the cap there and incrementing here cannot overshoot.
fn dispatch(
    stream: TcpStream,
    peer: SocketAddr,
    name: &Arc<str>,
    verbose: bool,
    active: &Arc<AtomicUsize>,
) {
    // Accepted sockets inherit O_NONBLOCK from the listener on some systems; handlers block.
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    active.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(active.clone());
    let name = name.clone();
    let spawned = thread::Builder::new()
        .name("conn".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _slot = slot;
            let outcome = handle(&stream, &name);
            if verbose {
                eprintln!("{peer} {outcome}");
            }
        });
    if let Err(e) = spawned {
        // The closure (with the slot and the stream) was dropped: count and socket are released.
        eprintln!("sheave-lab-http: cannot spawn handler: {e}");
    }
}

/// Serves one connection; returns a one-line summary for the verbose log.
fn handle(stream: &TcpStream, name: &str) -> String {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let head = match read_head(stream) {
        Ok(h) => h,
        Err(HeadError::Closed) => return "closed before a request".into(),
        Err(HeadError::Timeout) => {
            return finish(stream, "408 Request Timeout", b"timeout\n", true);
        }
        Err(HeadError::TooLarge) => {
            return finish(
                stream,
                "431 Request Header Fields Too Large",
                b"too large\n",
                true,
            );
        }
        Err(HeadError::Io(e)) => return format!("read error: {e}"),
    };
    let Some((method, target)) = parse_request_line(&head) else {
        return finish(stream, "400 Bad Request", b"bad request\n", true);
    };
    let summary = format!("{method} {target}");
    let with_body = method == "GET";
    if !with_body && method != "HEAD" {
        return finish(stream, "405 Method Not Allowed", b"GET or HEAD\n", true);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let outcome = if path == "/echo" && with_body {
        echo_lines(stream, name)
    } else if let (Some(file), "/health") = (HEALTH_FILE.get(), path) {
        let status = health_status(std::fs::read_to_string(file).ok().as_deref(), unix_ms());
        let (line, body) = if status == 200 {
            ("200 OK".to_string(), &b"ok\n"[..])
        } else {
            (format!("{status} Unhealthy"), &b"unhealthy\n"[..])
        };
        finish(stream, &line, body, with_body)
    } else if path == "/sink" && with_body {
        match size_param(query, "bytes") {
            Some(n) => sink(stream, name, n),
            None => finish(stream, "400 Bad Request", b"bad sink parameters\n", true),
        }
    } else if path == "/bytes" {
        match size_param(query, "n") {
            Some(n) => send_bytes(stream, n, with_body),
            None => finish(stream, "400 Bad Request", b"bad bytes parameters\n", true),
        }
    } else if path == "/stream" {
        match stream_params(query) {
            Some((seconds, interval)) => stream_lines(stream, name, seconds, interval, with_body),
            None => finish(stream, "400 Bad Request", b"bad stream parameters\n", true),
        }
    } else {
        let body = format!("{name}\n");
        finish(stream, "200 OK", body.as_bytes(), with_body)
    };
    format!("{summary} -> {outcome}")
}

enum HeadError {
    Closed,
    Timeout,
    TooLarge,
    Io(io::Error),
}

/// Reads up to the blank line ending the request head, within [`HEAD_TIMEOUT`] in total (a
/// per-read timeout alone would let a byte-at-a-time client hold the thread forever).
fn read_head(mut stream: &TcpStream) -> Result<String, HeadError> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf) {
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    // Bare-LF heads are tolerated, as most servers do.
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `METHOD TARGET HTTP/1.x` -> (method, target).
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.") && target.starts_with('/'))
        .then_some((method, target))
}

/// `seconds=N&interval_ms=M`, both optional, within bounds.
fn stream_params(query: &str) -> Option<(u64, u64)> {
    let (mut seconds, mut interval_ms) = (10u64, 1000u64);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "seconds" => seconds = v,
            "interval_ms" => interval_ms = v,
            _ => return None,
        }
    }
    (seconds <= 3600 && (10..=60_000).contains(&interval_ms)).then_some((seconds, interval_ms))
}

/// The `/stream` response: lines on a fixed schedule (no drift) until `seconds` pass, the
/// client goes away, or the server stops.
fn stream_lines(
    mut stream: &TcpStream,
    name: &str,
    seconds: u64,
    interval_ms: u64,
    with_body: bool,
) -> String {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\
                Connection: close\r\n\r\n";
    if let Err(e) = stream.write_all(head.as_bytes()) {
        return format!("200 stream, write error: {e}");
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut seq: u64 = 0;
    while with_body && !stopping() {
        let due = start + Duration::from_millis(interval_ms.saturating_mul(seq));
        if due >= end && seq > 0 {
            break;
        }
        let now = Instant::now();
        if now < due {
            thread::sleep((due - now).min(TICK));
            continue;
        }
        if let Err(e) = stream.write_all(format!("{name} {seq}\n").as_bytes()) {
            return format!("200 stream, {seq} lines, write error: {e}");
        }
        seq += 1;
    }
    linger_close(stream);
    format!("200 stream, {seq} lines")
}

/// The `/echo` response: a head, then `<name> <line>` for every line until the client
/// half-closes, stays silent for [`ECHO_IDLE`], or the server stops.
fn echo_lines(mut stream: &TcpStream, name: &str) -> String {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\
                Connection: close\r\n\r\n";
    if let Err(e) = stream.write_all(head.as_bytes()) {
        return format!("200 echo, write error: {e}");
    }
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let mut lines = 0u64;
    let mut idle_since = Instant::now();
    // Short reads so that the stop flag is seen; the idle bound is kept by hand.
    if let Err(e) = stream.set_read_timeout(Some(TICK)) {
        return format!("200 echo, {e}");
    }
    let end = loop {
        if stopping() {
            break "server stopping".to_string();
        }
        match stream.read(&mut chunk) {
            Ok(0) => break "client done".to_string(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if idle_since.elapsed() >= ECHO_IDLE {
                    break "idle".to_string();
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return format!("200 echo, {lines} lines, read error: {e}"),
        }
        idle_since = Instant::now();
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..nl]);
            let reply = format!("{name} {}\n", text.trim_end_matches('\r'));
            if let Err(e) = stream.write_all(reply.as_bytes()) {
                return format!("200 echo, {lines} lines, write error: {e}");
            }
            lines += 1;
        }
        if buf.len() > MAX_ECHO_LINE {
            break "line too long".to_string();
        }
    };
    linger_close(stream);
    format!("200 echo, {lines} lines, {end}")
}

/// The status `/health` answers for the `--health-file` contents `file` (`None`: no file) at
/// wall-clock time `now_ms` (milliseconds since the Unix epoch; wall clock, so that a test in
/// another process can tell which half of a `flap` period a check fell in).
fn health_status(file: Option<&str>, now_ms: u64) -> u16 {
    let Some(text) = file.map(str::trim).filter(|t| !t.is_empty()) else {
        return 200;
    };
    if let Some(period) = text.strip_prefix("flap ") {
        return match period.trim().parse::<u64>() {
            Ok(p) if p > 0 && (now_ms / p).is_multiple_of(2) => 200,
            _ => 500,
        };
    }
    // A garbled file is a broken backend, not a healthy one.
    text.parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .unwrap_or(500)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes a complete response and closes; returns the summary.
fn finish(stream: &TcpStream, status: &str, body: &[u8], with_body: bool) -> String {
    match respond(stream, status, body, with_body) {
        Ok(()) => {
            linger_close(stream);
            status.split(' ').next().unwrap_or(status).to_string()
        }
        Err(e) => format!("{status}, write error: {e}"),
    }
}

fn respond(mut stream: &TcpStream, status: &str, body: &[u8], with_body: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)
}

/// Half-closes, then reads until the client closes too (bounded by [`LINGER`]). Closing with
/// unread request bytes in the socket would send RST, which can destroy the response before
/// the client has read it.
fn linger_close(mut stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Largest `/sink` or `/bytes` transfer.
const MAX_BULK: u64 = 1 << 30;

/// `key=N` from a query string, N at most [`MAX_BULK`].
fn size_param(query: &str, key: &str) -> Option<u64> {
    let n: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()?;
    (n <= MAX_BULK).then_some(n)
}

/// The `/sink` response: a head, then once `n` bytes have arrived, their count and checksum.
fn sink(mut stream: &TcpStream, name: &str, n: u64) -> String {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\
                Connection: close\r\n\r\n";
    if let Err(e) = stream.write_all(head.as_bytes()) {
        return format!("200 sink, write error: {e}");
    }
    if let Err(e) = stream.set_read_timeout(Some(TICK)) {
        return format!("200 sink, {e}");
    }
    let mut hash = bulk::Fnv::new();
    let (mut got, mut idle_since) = (0u64, Instant::now());
    let mut chunk = vec![0u8; 64 * 1024];
    while got < n {
        if stopping() {
            return format!("200 sink, stopped after {got} of {n} bytes");
        }
        let want = chunk.len().min((n - got) as usize);
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return format!("200 sink, client closed after {got} of {n} bytes"),
            Ok(k) => {
                hash.update(&chunk[..k]);
                got += k as u64;
                idle_since = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if idle_since.elapsed() >= ECHO_IDLE {
                    return format!("200 sink, idle after {got} of {n} bytes");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return format!("200 sink, read error after {got} bytes: {e}"),
        }
    }
    let line = format!("{name} {got} {:016x}\n", hash.0);
    match stream.write_all(line.as_bytes()) {
        Ok(()) => format!("200 sink, {got} bytes"),
        Err(e) => format!("200 sink, write error: {e}"),
    }
}

/// The `/bytes` response: `n` bytes of [`pattern`].
fn send_bytes(mut stream: &TcpStream, n: u64, with_body: bool) -> String {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(head.as_bytes()) {
        return format!("200 bytes, write error: {e}");
    }
    if !with_body {
        return "200 bytes, head only".into();
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < n {
        if stopping() {
            return format!("200 bytes, stopped after {sent} of {n}");
        }
        let k = buf.len().min((n - sent) as usize);
        for (j, b) in buf[..k].iter_mut().enumerate() {
            *b = bulk::pattern(sent + j as u64);
        }
        if let Err(e) = stream.write_all(&buf[..k]) {
            return format!("200 bytes, write error after {sent}: {e}");
        }
        sent += k as u64;
    }
    format!("200 bytes, {sent} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line() {
        assert_eq!(
            parse_request_line("GET / HTTP/1.1\r\nHost: x"),
            Some(("GET", "/"))
        );
        assert_eq!(
            parse_request_line("GET /a?b HTTP/1.0"),
            Some(("GET", "/a?b"))
        );
        assert_eq!(parse_request_line("GET / HTTP/2"), None);
        assert_eq!(parse_request_line("GET http://x/ HTTP/1.1"), None);
        assert_eq!(parse_request_line("GET /"), None);
    }

    #[test]
    fn stream_query() {
        assert_eq!(stream_params(""), Some((10, 1000)));
        assert_eq!(stream_params("seconds=2&interval_ms=50"), Some((2, 50)));
        assert_eq!(stream_params("interval_ms=5"), None);
        assert_eq!(stream_params("seconds=x"), None);
        assert_eq!(stream_params("other=1"), None);
    }

    #[test]
    fn health_file() {
        assert_eq!(health_status(None, 0), 200);
        assert_eq!(health_status(Some(" \n"), 0), 200);
        assert_eq!(health_status(Some("200\n"), 0), 200);
        assert_eq!(health_status(Some("503"), 0), 503);
        assert_eq!(health_status(Some("garbage"), 0), 500);
        assert_eq!(health_status(Some("flap 300"), 299), 200);
        assert_eq!(health_status(Some("flap 300"), 300), 500);
        assert_eq!(health_status(Some("flap 300"), 600), 200);
        assert_eq!(health_status(Some("flap 0"), 600), 500);
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nxx"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
