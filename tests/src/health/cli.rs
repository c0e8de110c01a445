//! The `sheave` CLI pointed at the lab's `sheaved`, and the per-backend status it reports.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::deploy::api_socket;
use crate::lab::{Host, Lab, bin_path};

/// Bound on one CLI call: they answer in milliseconds; this only catches a wedged daemon.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP VIP, spelled the two ways Sheave spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vip(pub SocketAddr);

impl Vip {
    /// `tcp:198.18.100.1:80`: how the CLI takes it.
    pub fn cli(&self) -> String {
        format!("tcp:{}", self.0)
    }

    /// `tcp 198.18.100.1:80`: its name in status JSON, metric labels and log lines.
    pub fn name(&self) -> String {
        format!("tcp {}", self.0)
    }
}

/// One backend of one VIP as `sheave status --json` shows it (`vips[].backends[]`). Fields of
/// the health-check interface are optional so that a missing one fails the assertion about it,
/// with the whole record in the message, rather than the parse.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackendStatus {
    pub address: IpAddr,
    /// `up`, `down`, `draining`, `slow-start`, `disabled` (and `weight-0`).
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Flows still in the flow table while draining.
    #[serde(default)]
    pub flows: Option<u64>,
    pub weight: u64,
    /// What the ring is built with now: ramps during slow-start (fractional), 0 when out.
    #[serde(default)]
    pub effective_weight: Option<f64>,
    pub ring_share: f64,
}

/// The CLI on the lb host, talking to the lab's API socket.
#[derive(Debug, Clone)]
pub struct Sheave {
    lb: Host,
    bin: PathBuf,
    socket: String,
}

impl Sheave {
    pub fn new(lab: &Lab) -> Result<Sheave> {
        Ok(Sheave {
            lb: lab.lb().clone(),
            bin: bin_path("sheave")?,
            socket: api_socket(lab.dir()).to_string_lossy().into_owned(),
        })
    }

    /// `sheave ARGS`; a non-zero exit is an error with stderr. Returns stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["--socket", self.socket.as_str()];
        all.extend_from_slice(args);
        self.lb
            .run_timeout(&self.bin, &all, CALL_TIMEOUT)
            .with_context(|| format!("sheave {}", args.join(" ")))
    }

    /// `sheave --json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all)?;
        serde_json::from_str(&out).with_context(|| format!("parsing {out:?}"))
    }

    /// The backends of `vip` in `sheave status --json`.
    pub fn backends(&self, vip: Vip) -> Result<Vec<BackendStatus>> {
        let v = self.vip_status(vip)?;
        serde_json::from_value(v["backends"].clone())
            .with_context(|| format!("backends of {}: {}", vip.name(), v["backends"]))
    }

    /// `vip`'s entry in `sheave status --json` (`vips[]`), whole.
    pub fn vip_status(&self, vip: Vip) -> Result<Value> {
        let status = self.json(&["status"])?;
        let name = vip.name();
        status["vips"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name.as_str()))
            .cloned()
            .with_context(|| format!("no VIP {name} in sheave status: {status}"))
    }

    /// Backend `addr` of `vip`, `None` if it is not (or no longer) a member.
    pub fn backend(&self, vip: Vip, addr: IpAddr) -> Result<Option<BackendStatus>> {
        Ok(self.backends(vip)?.into_iter().find(|b| b.address == addr))
    }

    /// Whether `addr` is listed by `sheave vip show VIP`.
    pub fn is_member(&self, vip: Vip, addr: IpAddr) -> Result<bool> {
        let v = self.json(&["vip", "show", &vip.cli()])?;
        let Some(list) = v["backends"].as_array() else {
            bail!("no backends in sheave vip show {}: {v}", vip.cli());
        };
        Ok(list
            .iter()
            .any(|b| b["address"].as_str() == Some(addr.to_string().as_str())))
    }

    /// Polls `sheave status` every `poll` until `done` holds for `vip`'s backends, for at most
    /// `timeout`; returns them, or an error naming `what` with the last status seen.
    pub fn wait_for(
        &self,
        vip: Vip,
        what: &str,
        timeout: Duration,
        poll: Duration,
        done: impl Fn(&[BackendStatus]) -> bool,
    ) -> Result<Vec<BackendStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let b = self.backends(vip)?;
            if done(&b) {
                return Ok(b);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what}: not within {timeout:?}; last status of {}: {b:#?}",
                    vip.name()
                );
            }
            thread::sleep(poll);
        }
    }

    /// Waits until backend `addr` of `vip` is in `state`.
    pub fn wait_state(
        &self,
        vip: Vip,
        addr: IpAddr,
        state: &str,
        timeout: Duration,
    ) -> Result<BackendStatus> {
        let all = self.wait_for(
            vip,
            &format!("{addr} {state}"),
            timeout,
            Duration::from_millis(50),
            |bs| bs.iter().any(|b| b.address == addr && b.state == state),
        )?;
        Ok(all
            .into_iter()
            .find(|b| b.address == addr)
            .expect("checked"))
    }

    /// Waits until every backend of `vip` is `up`: a checked backend is `down` until its first
    /// check passes, so this also waits for every first check.
    pub fn wait_all_up(&self, vip: Vip, timeout: Duration) -> Result<()> {
        self.wait_for(
            vip,
            "every backend up",
            timeout,
            Duration::from_millis(100),
            |bs| !bs.is_empty() && bs.iter().all(|b| b.state == "up"),
        )
        .map(drop)
    }
}
