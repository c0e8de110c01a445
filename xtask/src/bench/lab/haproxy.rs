//! HAProxy, the userspace L4 proxy Sheave is compared with: Debian's package in TCP mode on the
//! lb host, listening on the VIP itself. It is a full proxy, so replies come back through it;
//! Sheave's backends answer the client directly.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use sheave_tests::lab::{Host, Lab, Process, VIP_PORT, VIP4};

use super::servers::IPERF_PORT;

/// How long HAProxy may take to accept connections on the VIP.
const READY: Duration = Duration::from_secs(10);

/// A running HAProxy; dropping it stops it and takes the VIP off the lb's `lo`.
pub struct Haproxy {
    process: Option<Process>,
    lb: Host,
}

impl Haproxy {
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").pid()
    }

    /// The VIP on the lb's `lo` (the client routes it to the lb), the configuration checked,
    /// then `haproxy -db` (foreground: the guard owns it) and a first connection through it.
    pub fn start(lab: &Lab, threads: usize) -> Result<Haproxy> {
        let lb = lab.lb().clone();
        lb.run("ip", &["addr", "add", &format!("{VIP4}/32"), "dev", "lo"])?;
        let mut h = Haproxy { process: None, lb };
        let cfg = lab.dir().join("haproxy.cfg");
        std::fs::write(&cfg, config(lab, threads))?;
        let cfg = cfg.to_string_lossy().into_owned();
        h.lb.run("haproxy", &["-c", "-q", "-f", &cfg])
            .context("haproxy refuses its configuration")?;
        h.process = Some(h.lb.spawn("haproxy", ["-db", "-f", &cfg])?);
        lab.client()
            .wait_for_tcp((VIP4, VIP_PORT).into(), READY)
            .with_context(|| {
                let log = h.process.as_ref().map(Process::log).unwrap_or_default();
                format!("HAProxy does not answer on {VIP4}:{VIP_PORT}:\n{log}")
            })?;
        Ok(h)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // The guard's own drop stops it (SIGTERM, then SIGKILL); first, so the address is free.
        drop(self.process.take());
        let vip = format!("{VIP4}/32");
        if let Err(e) = self.lb.run("ip", &["addr", "del", &vip, "dev", "lo"]) {
            eprintln!("xtask: cleanup: {e:#}");
        }
    }
}

/// As many connections as the file-descriptor limit allows (two descriptors each, plus a few
/// of HAProxy's own), at most 100,000: far above what the bench keeps in flight, so never the
/// limit. HAProxy raises its soft limit itself but cannot pass the hard one (20,000 in some
/// containers), and refuses to start if `maxconn` needs more.
fn max_connections() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, nothing else.
    let hard = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_max
    } else {
        1024
    };
    (hard.saturating_sub(100) / 2).clamp(100, 100_000)
}

/// Round robin over every backend on port 80; iperf3 to the first backend only, as for Sheave
/// (an iperf3 test's control and data connections must reach the same server).
fn config(lab: &Lab, threads: usize) -> String {
    let maxconn = max_connections();
    // Literal lines: HAProxy's configuration reads better with its own indentation.
    let mut s = format!(
        "# Written by `cargo xtask bench lab`.
global
    # As many threads as CPUs: the machine Sheave's XDP program runs on has no more.
    nbthread {threads}
    maxconn {maxconn}
    # No log: logging every connection would measure the logger.

defaults
    mode tcp
    maxconn {maxconn}
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind {VIP4}:{VIP_PORT}
    default_backend web

backend web
    balance roundrobin
"
    );
    for b in lab.backends() {
        let _ = writeln!(s, "    server {} {}:{VIP_PORT}", b.name, b.v4);
    }
    let first = &lab.backends()[0];
    let _ = write!(
        s,
        "\nfrontend iperf\n    bind {VIP4}:{IPERF_PORT}\n    default_backend iperf\n\n\
         backend iperf\n    server {} {}:{IPERF_PORT}\n",
        first.name, first.v4
    );
    s
}
