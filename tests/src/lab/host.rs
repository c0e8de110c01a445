//! One lab host (a network namespace with one interface on the lab bridge) and running things in it.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::bins::bin_path;
use super::cmd;
use super::netns;
use super::process::Process;
use super::report::ClientReport;

/// Default bound for [`Host::run`]: generous for configuration tools, finite for a hung one.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What every host of a lab shares: where logs go and a counter to keep their names unique.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    seq: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(dir: PathBuf) -> Shared {
        Shared {
            dir,
            seq: AtomicUsize::new(0),
        }
    }
}

/// A host of the lab.
#[derive(Debug, Clone)]
pub struct Host {
    /// The role: `client`, `lb`, `b1`, `b2`, ...
    pub name: String,
    /// The namespace (`<prefix>-<role>`), under /run/netns.
    pub netns: String,
    /// Its only interface besides `lo`: `eth-<role>`.
    pub iface: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub(crate) shared: Arc<Shared>,
}

impl Host {
    /// Its IPv6 address if `v6`, else its IPv4 address.
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 { self.v6.into() } else { self.v4.into() }
    }

    /// `addr(v6):port`, e.g. as a `sheave-lab-client` target (`to_string()`).
    pub fn socket(&self, v6: bool, port: u16) -> SocketAddr {
        SocketAddr::new(self.addr(v6), port)
    }

    /// A `Command` that runs `program` inside this host's network namespace via
    /// `nsenter --net=/run/netns/<netns> -- program`. Not `ip netns exec`: that remounts /sys
    /// and hides bpffs pins; nsenter --net keeps our mount namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        netns::command(&self.netns, program)
    }

    /// Runs `program args` here to completion (at most 60 s); a non-zero exit is an error
    /// carrying stderr. Returns stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        self.run_timeout(program, args, RUN_TIMEOUT)
    }

    /// [`Host::run`] with a caller-chosen bound.
    pub fn run_timeout<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        timeout: Duration,
    ) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command(program);
        c.args(args);
        cmd::checked(&mut c, timeout).with_context(|| format!("on host {}", self.name))
    }

    /// Starts a long-running `program args` here. The guard stops it on drop; its stdout and
    /// stderr go to `<lab dir>/<host>-<program>-<n>.log`. Returns as soon as it is started, not
    /// ready: wait for readiness yourself (e.g. [`Host::wait_for_tcp`]). See [`Process`] for
    /// which thread should call this.
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = program.as_ref();
        let base = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy()
            .into_owned();
        let n = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let log = self
            .shared
            .dir
            .join(format!("{}-{base}-{n}.log", self.name));
        let mut c = self.command(program);
        c.args(args);
        Process::spawn(&mut c, format!("{}:{base}", self.name), log)
    }

    /// Runs `f` on a thread that has entered this host's network namespace, so sockets it opens
    /// live here. Only that short-lived thread changes namespace, never the caller's.
    pub fn in_netns<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        thread::scope(|s| {
            let worker = s.spawn(|| -> Result<T> {
                netns::enter(&self.netns)?;
                Ok(f())
            });
            match worker.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Waits until a TCP connection from this host to `addr` succeeds, e.g. for a server to
    /// start listening. Polls every 50 ms for at most `timeout`.
    pub fn wait_for_tcp(&self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let last = self.in_netns(|| {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let err =
                    match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))) {
                        Ok(_) => return None,
                        Err(e) => e,
                    };
                if Instant::now() + Duration::from_millis(50) >= deadline {
                    return Some(err);
                }
                thread::sleep(Duration::from_millis(50));
            }
        })?;
        match last {
            None => Ok(()),
            Some(e) => Err(anyhow!(e)).with_context(|| {
                format!("{addr} not accepting from {} within {timeout:?}", self.name)
            }),
        }
    }

    /// Runs `sheave-lab-client --target TARGET --count COUNT` here with default options.
    pub fn run_client(&self, target: &str, count: usize) -> Result<ClientReport> {
        self.run_client_with(
            target,
            &ClientOpts {
                count,
                ..ClientOpts::default()
            },
        )
    }

    /// Runs `sheave-lab-client` here against `target` (`ip:port` or `[ip6]:port`).
    pub fn run_client_with(&self, target: &str, opts: &ClientOpts) -> Result<ClientReport> {
        let bin = bin_path("sheave-lab-client")?;
        let mut args = vec![
            "--target".to_string(),
            target.to_string(),
            "--count".into(),
            opts.count.to_string(),
            "--concurrency".into(),
            opts.concurrency.to_string(),
            "--timeout-ms".into(),
            opts.timeout.as_millis().to_string(),
            "--deadline-s".into(),
            opts.deadline.as_secs().max(1).to_string(),
            "--path".into(),
            opts.path.clone(),
        ];
        if let Some(base) = opts.source_port_base {
            args.extend(["--source-port-base".into(), base.to_string()]);
        }
        // The client enforces its own deadline; this outer bound only catches a wedged binary.
        let bound = opts.deadline + Duration::from_secs(15);
        let out = self.run_timeout(&bin, &args, bound)?;
        let report: ClientReport = serde_json::from_str(out.trim())
            .with_context(|| format!("parsing sheave-lab-client output {out:?}"))?;
        if report.requested != opts.count {
            bail!(
                "sheave-lab-client reports {} requested, asked {}",
                report.requested,
                opts.count
            );
        }
        Ok(report)
    }
}

/// Options of [`Host::run_client_with`]; mirrors the flags of `sheave-lab-client`.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub count: usize,
    pub concurrency: usize,
    /// Per-connection bound (connect + request + full response).
    pub timeout: Duration,
    /// Bound on the whole run (whole seconds, at least 1).
    pub deadline: Duration,
    pub path: String,
    /// Fixed local ports BASE.. instead of ephemeral ones (reproducible 5-tuples).
    pub source_port_base: Option<u16>,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            count: 1,
            concurrency: 1,
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(120),
            path: "/".into(),
            source_port_base: None,
        }
    }
}
