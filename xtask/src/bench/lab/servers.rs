//! What runs in the lab besides the load balancers: the backends' HTTP and iperf3 servers, and
//! the kernel settings that let tens of thousands of short connections run back to back.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use sheave_tests::lab::{Host, Lab, Process, VIP_PORT, bin_path};

use crate::cmd::capture;

/// The port iperf3 listens on (its default), on the backends and on the VIP.
pub const IPERF_PORT: u16 = 5201;
/// How long a server may take to listen.
const READY: Duration = Duration::from_secs(10);

/// Lets the client (and HAProxy's side of the lb) open connections back to back: every run
/// makes tens of thousands to the same destination, and the closing side keeps each 4-tuple in
/// TIME_WAIT for 60 s. The default 28k ephemeral ports would run out within a few runs; with
/// the full range and `tcp_tw_reuse` a port is reused a second after it closed. Both are
/// per-namespace settings, gone with the lab.
pub fn tune(lab: &Lab) -> Result<()> {
    for host in [lab.client(), lab.lb()] {
        host.run(
            "sysctl",
            &[
                "-q",
                "-w",
                "net.ipv4.ip_local_port_range=1024 65535",
                "net.ipv4.tcp_tw_reuse=1",
            ],
        )?;
    }
    Ok(())
}

/// `sheave-lab-http` on port 80 of every backend (what Sheave's deployment runs too), ready.
pub fn http(lab: &Lab) -> Result<Vec<Process>> {
    let bin = bin_path("sheave-lab-http")?;
    let mut servers = Vec::new();
    for b in lab.backends() {
        servers.push(b.spawn(&bin, ["--name", b.name.as_str(), "--listen", "[::]:80"])?);
    }
    for b in lab.backends() {
        b.wait_for_tcp(b.socket(false, VIP_PORT), READY)?;
    }
    Ok(servers)
}

/// `iperf3 -s` on `host`, ready. A test connection would count as a (failed) iperf3 test, so
/// readiness is read from the socket table instead.
pub fn iperf(host: &Host) -> Result<Process> {
    let mut p = host.spawn("iperf3", ["-s", "-p", &IPERF_PORT.to_string()])?;
    let deadline = Instant::now() + READY;
    let filter = format!("sport = :{IPERF_PORT}");
    loop {
        let listening = host.run("ss", &["-H", "-l", "-t", "-n", &filter])?;
        if !listening.trim().is_empty() {
            return Ok(p);
        }
        if let Some(st) = p.try_status() {
            bail!("iperf3 -s on {} exited ({st}):\n{}", host.name, p.log());
        }
        if Instant::now() >= deadline {
            bail!("iperf3 -s on {} not listening after {READY:?}", host.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the switch hand the lb complete TCP checksums, as a NIC does; undone on drop.
///
/// The lab's switch ports run GRO (veth needs it to deliver XDP_TX frames), so a bulk upload's
/// segments are merged on the client's port and cut up again on the way out to the lb, as
/// CHECKSUM_PARTIAL segments whose TCP checksum field holds only the pseudo-header sum: the
/// kernel would finish it later. An XDP program sees bytes, not that flag, so Sheave forwards
/// the unfinished checksum and the backend drops every full-sized segment (TcpInCsumErrors;
/// iperf3 uploads stall at 0 Gbps). With checksum offload off on the lb's switch port, the
/// segmentation computes them in software. HAProxy's runs keep the lab as it is: the kernel
/// understands CHECKSUM_PARTIAL.
pub struct FullChecksums {
    netns: String,
    port: String,
}

impl FullChecksums {
    pub fn on(lab: &Lab) -> Result<FullChecksums> {
        let g = FullChecksums {
            netns: lab.switch_netns().to_string(),
            port: format!("p-{}", lab.lb().name),
        };
        g.tx("off")?;
        Ok(g)
    }

    fn tx(&self, state: &str) -> Result<()> {
        let out = capture(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .args(["--", "ethtool", "-K", &self.port, "tx", state]),
        )?;
        if !out.status.success() {
            bail!("ethtool -K {} tx {state}: {}", self.port, out.stderr.trim());
        }
        Ok(())
    }
}

impl Drop for FullChecksums {
    fn drop(&mut self) {
        if let Err(e) = self.tx("on") {
            eprintln!("xtask: cleanup: {e:#}");
        }
    }
}
