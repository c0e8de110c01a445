//! `sheave-lab-client`: opens N short HTTP/1.1 connections to a target and reports, as one JSON
//! object on stdout, which backend answered each (the first line of the body) and what failed.
//!
//! ```text
//! sheave-lab-client --target 198.18.100.1:80 [--count 300] [--concurrency 1]
//!                   [--timeout-ms 2000] [--deadline-s 120] [--path /] [--host NAME]
//! ```
//!
//! Each connection is bounded by `--timeout-ms` (connect, request and the whole response); the
//! run by the smaller of `--deadline-s` and count x timeout. Failures are counted, not fatal:
//! exit status 0 whatever the outcome, 2 on usage errors. The JSON is
//! [`sheave_tests::lab::ClientReport`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use sheave_tests::{
    lab::ClientReport,
    traffic::http::{kind, read_response},
};

#[derive(Parser, Debug)]
#[command(about = "Lab HTTP client that counts which backend answered")]
struct Args {
    /// `ip:port` or `[ipv6]:port`.
    #[arg(long)]
    target: SocketAddr,
    /// Connections to make, one request each.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Bound on each connection: connect, request and full response.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    /// Bound on the whole run.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    deadline_s: u64,
    /// Request path (origin form: starts with `/`, no spaces or control characters).
    #[arg(long, default_value = "/", value_parser = parse_path)]
    path: String,
    /// Host header; defaults to the target.
    #[arg(long)]
    host: Option<String>,
    /// Bind connection i to local port BASE+i instead of an ephemeral port, so the same run
    /// produces the same 5-tuples every time (hash-based load balancing becomes reproducible).
    #[arg(long, value_name = "BASE")]
    source_port_base: Option<u16>,
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(s.to_string())
    } else {
        Err("must start with '/' and contain no whitespace or control characters".into())
    }
}

/// What every worker adds to.
#[derive(Default)]
struct Tally {
    attempted: usize,
    ok: usize,
    by_backend: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

fn main() {
    let args = Args::parse();
    if args
        .host
        .as_deref()
        .is_some_and(|h| h.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        eprintln!("sheave-lab-client: --host must contain no whitespace or control characters");
        std::process::exit(2);
    }
    let report = run(&args);
    // serde_json cannot fail on this plain struct.
    println!(
        "{}",
        serde_json::to_string(&report).expect("report serialises")
    );
}

fn run(args: &Args) -> ClientReport {
    let start = Instant::now();
    let per_conn = Duration::from_millis(args.timeout_ms);
    let overall = per_conn
        .saturating_mul(u32::try_from(args.count).unwrap_or(u32::MAX))
        .min(Duration::from_secs(args.deadline_s));
    let deadline = start + overall;
    let host = args.host.clone().unwrap_or_else(|| args.target.to_string());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sheave-lab-client\r\nConnection: close\r\n\r\n",
        args.path
    );
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    let workers = (args.concurrency as usize).min(args.count);
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                // Stop taking work at the deadline; the remainder is reported as not attempted.
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if Instant::now() >= deadline || i >= args.count {
                        break;
                    }
                    let bound = (Instant::now() + per_conn).min(deadline);
                    let sport = args.source_port_base.map(|b| b.wrapping_add(i as u16));
                    let outcome = one(args.target, sport, request.as_bytes(), bound);
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.attempted += 1;
                    match outcome {
                        Ok(name) => {
                            t.ok += 1;
                            *t.by_backend.entry(name).or_default() += 1;
                        }
                        Err(kind) => *t.errors.entry(kind).or_default() += 1,
                    }
                }
            });
        }
    });
    let t = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    ClientReport {
        target: args.target.to_string(),
        requested: args.count,
        attempted: t.attempted,
        ok: t.ok,
        failed: t.attempted - t.ok,
        not_attempted: args.count - t.attempted,
        by_backend: t.by_backend,
        errors: t.errors,
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// One connection, all of it before `deadline`. Ok(backend name) or Err(error kind).
fn one(
    target: SocketAddr,
    sport: Option<u16>,
    request: &[u8],
    deadline: Instant,
) -> Result<String, String> {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "block forever" to the socket API; never pass one.
        (!d.is_zero()).then_some(d)
    };
    let mut s = connect(target, sport, left().ok_or("connect_timeout")?)
        .map_err(|e| kind("connect", &e))?;
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(left().ok_or("write_timeout")?))
        .map_err(|e| kind("write", &e))?;
    s.write_all(request).map_err(|e| kind("write", &e))?;

    read_response(&mut s, left)
}

/// Connect, from local port `sport` if given (SO_REUSEADDR so a port in TIME_WAIT from an
/// earlier run can be reused).
fn connect(target: SocketAddr, sport: Option<u16>, timeout: Duration) -> io::Result<TcpStream> {
    let Some(port) = sport else {
        return TcpStream::connect_timeout(&target, timeout);
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    let local: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, port).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    };
    sock.bind(&local.into())?;
    sock.connect_timeout(&target.into(), timeout)?;
    Ok(sock.into())
}
