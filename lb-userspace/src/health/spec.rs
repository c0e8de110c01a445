//! What a health check does, validated: built from the configuration's `[vip.health_check]`
//! (and a backend's override) by [`crate::config`], run by [`super::probe`].
use std::time::Duration;

use super::probe::Verdict;

/// One backend's check: the probe and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    pub probe: Probe,
    /// Port probed on the backend (default: the VIP's port).
    pub port: u16,
    /// Time between checks while the state is settled.
    pub interval: Duration,
    /// Time between checks while a change is pending (after a first failure of an up backend,
    /// or a first success of a down one), so `fall` failures are confirmed quickly.
    pub fast_interval: Duration,
    /// A check not answered within this time fails.
    pub timeout: Duration,
    /// Each wait is lengthened or shortened by a random amount up to this, so checks of many
    /// backends do not fire in lockstep.
    pub jitter: Duration,
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
    /// What a backend is before this check's first result.
    pub initial: InitialState,
}

/// A backend's state before its check has answered once (`initial_state`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum InitialState {
    /// Out of the ring until the first check passes (one success suffices; a first failure
    /// settles it down at once): a new backend never gets flows it cannot serve.
    #[default]
    Down,
    /// In the ring at once; taken out after `fall` failures, like any up backend.
    Up,
}

impl InitialState {
    pub fn verdict(self) -> Verdict {
        match self {
            InitialState::Down => Verdict::Down,
            InitialState::Up => Verdict::Up,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP/1.1 GET (over TLS for `https`) answers with an expected status.
    Http(HttpProbe),
    /// A datagram is answered (optionally with expected content).
    Udp(UdpProbe),
    /// A command exits with status 0.
    Exec(ExecProbe),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpProbe {
    /// Over TLS (`type = "https"`).
    pub tls: Option<TlsOptions>,
    /// Request path, e.g. `/healthz`.
    pub path: String,
    /// `Host` header (and TLS server name unless `TlsOptions::server_name`); default: the
    /// backend's address.
    pub host: Option<String>,
    /// Inclusive range of statuses that mean "up".
    pub expect_status: (u16, u16),
    /// The body (first 64 KiB) must contain this.
    pub expect_body: Option<String>,
    /// Statuses that mean "going away": the backend is drained, not failed (e.g. 503 while a
    /// server shuts down gracefully).
    pub drain_on_status: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// Verify the certificate against the system's roots (off by default: backends are usually
    /// reached by address, not by the name their certificate carries).
    pub verify: bool,
    /// SNI and verification name; default: `host`, else the address.
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UdpProbe {
    /// Payload sent.
    pub send: Vec<u8>,
    /// The reply must contain this; `None`: any reply.
    pub expect: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecProbe {
    /// Program and arguments (no shell). It gets `SHEAVE_BACKEND` (address) and `SHEAVE_PORT` in
    /// its environment.
    pub command: Vec<String>,
}

impl CheckSpec {
    /// The check's name in logs and metrics: `tcp`, `http`, `https`, `udp`, `exec`.
    pub fn kind(&self) -> &'static str {
        match &self.probe {
            Probe::Tcp => "tcp",
            Probe::Http(h) if h.tls.is_some() => "https",
            Probe::Http(_) => "http",
            Probe::Udp(_) => "udp",
            Probe::Exec(_) => "exec",
        }
    }
}

/// Defaults: a dead server is out within about 0.7 s (a check every 500 ms; the first failure
/// is confirmed by two more 100 ms apart), and back after two good checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
pub const DEFAULT_FAST_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);
pub const DEFAULT_JITTER: Duration = Duration::from_millis(50);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
