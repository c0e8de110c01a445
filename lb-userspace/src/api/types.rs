//! Request and response bodies of the API, shared by `sheaved` and the `sheave` CLI.
use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Protocol;

/// A VIP as named in paths and on the command line: `tcp/198.18.100.1/80`; the CLI also takes
/// `tcp 198.18.100.1:80` forms through [`VipRef::from_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipRef {
    pub protocol: Protocol,
    pub address: IpAddr,
    pub port: u16,
}

impl VipRef {
    pub fn path(&self) -> String {
        format!("/v1/vips/{}/{}/{}", self.protocol, self.address, self.port)
    }
}

impl fmt::Display for VipRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol,
            SocketAddr::new(self.address, self.port)
        )
    }
}

impl FromStr for VipRef {
    type Err = anyhow::Error;
    /// `tcp:198.18.100.1:80`, `udp:[2001:db8::1]:53`.
    fn from_str(s: &str) -> Result<VipRef> {
        let Some((proto, addr)) = s.split_once(':') else {
            bail!(
                "{s:?}: expected PROTO:ADDR:PORT, e.g. tcp:192.0.2.10:80 or udp:[2001:db8::1]:53"
            );
        };
        let protocol: Protocol = proto.parse()?;
        let sa = crate::wire::parse_socket_addr(addr)?;
        Ok(VipRef {
            protocol,
            address: sa.ip(),
            port: sa.port(),
        })
    }
}

/// How packets reach a VIP's backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Forwarding {
    /// Direct server return through IP-in-IP encapsulation (backends decapsulate and answer
    /// clients directly): IPIP, IP6IP6, or 4in6/6in4 for a backend of the other family. (`ipip`,
    /// its old name, is still accepted.)
    #[default]
    #[serde(alias = "ipip")]
    #[value(alias = "ipip")]
    Encap,
}

/// What goes on the wire to a backend of a VIP: the outer header's family around the inner
/// packet's (`ipip`, `ip6ip6`, `4in6` for IPv4 in IPv6, `6in4`).
pub fn encapsulation(vip: IpAddr, backend: IpAddr) -> &'static str {
    match (vip.is_ipv4(), backend.is_ipv4()) {
        (true, true) => "ipip",
        (false, false) => "ip6ip6",
        (true, false) => "4in6",
        (false, true) => "6in4",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddVip {
    #[serde(flatten)]
    pub vip: VipRef,
    /// Maglev table size (prime); default 65537.
    #[serde(default)]
    pub ring_size: Option<u32>,
    /// New flows per second allowed into the flow table; default no limit.
    #[serde(default)]
    pub new_flow_limit: Option<u32>,
    /// Default `ipip`.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Health checks, slow start, drain timeout, all-down behaviour (as in the config file).
    #[serde(default)]
    pub policy: Option<crate::config::VipPolicy>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBackend {
    pub address: IpAddr,
    /// 0-65535, default 100.
    #[serde(default)]
    pub weight: Option<u16>,
    /// Keys of the VIP's health check that differ for this backend.
    #[serde(default)]
    pub health_check: Option<crate::config::HealthCheckConfig>,
}

/// Change a backend of a VIP; absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBackend {
    #[serde(default)]
    pub weight: Option<u16>,
    /// true: no new flows, established flows stay until they end or `drain_timeout`, then the
    /// backend leaves the VIP; false: cancel a drain.
    #[serde(default)]
    pub draining: Option<bool>,
    /// e.g. "30s"; default: the VIP's `drain_timeout`.
    #[serde(default, with = "humantime_serde::option")]
    pub drain_timeout: Option<std::time::Duration>,
}

/// Operator state of a backend in every VIP.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBackend {
    pub disabled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VipView {
    pub name: String,
    /// Every backend is down (`all_backends_down` says what new flows get).
    pub all_down: bool,
    pub all_backends_down: String,
    #[serde(flatten)]
    pub vip: VipRef,
    pub id: u32,
    pub forwarding: Forwarding,
    /// What goes on the wire to its backends, one entry per kind in use (see
    /// [`encapsulation`]).
    pub encapsulation: Vec<String>,
    pub ring_size: u32,
    /// New flows per second allowed into the flow table (0: no limit).
    pub new_flow_limit: u32,
    /// Rings published since the daemon started.
    pub ring_rebuilds: u64,
    pub backends: Vec<BackendView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub address: IpAddr,
    pub id: u32,
    pub weight: u16,
    /// `up`, `slow-start`, `draining`, `down`, `disabled`, or `weight-0` (up with weight 0).
    pub state: String,
    /// Why, e.g. "connect refused ×3", "operator drain".
    pub reason: String,
    /// The weight the published ring was built with (ramps during slow start; 0 when out).
    pub effective_weight: f64,
    /// Fraction of the VIP's ring slots (new flows) this backend gets.
    pub ring_share: f64,
    /// Live flows in the flow table, counted while something drains.
    pub flows: Option<u64>,
    /// Seconds until an operator drain ends at the latest.
    pub drain_remaining_seconds: Option<f64>,
    /// The latest health check, if the backend is checked.
    pub check: Option<CheckView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    /// `tcp`, `http`, `https`, `udp`, `exec`.
    pub kind: String,
    /// `up`, `down`, `going-away` (settled, after rise/fall), or `pending` before the first
    /// result (the backend is then its `initial_state`).
    pub verdict: String,
    /// The latest single result, e.g. "ok", "connect refused".
    pub last: String,
    pub latency_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub interface: String,
    pub xdp_mode: String,
    pub uptime_seconds: u64,
    pub vips: Vec<VipView>,
}

/// Counters since load, and rates over the last sampling interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficView {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub packets_per_second: f64,
    pub bits_per_second: f64,
    pub new_flows_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// Length of the interval the rates cover (0 before the second sample).
    pub interval_seconds: f64,
    /// By VIP name.
    pub vips: BTreeMap<String, TrafficView>,
    /// By backend address.
    pub backends: BTreeMap<String, TrafficView>,
    /// Packet outcomes and flow-table events (`tx`, `pass_no_vip`, `flow_hit`, ...).
    pub events: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub protocol: Protocol,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

impl ExplainRequest {
    /// `tcp 198.51.100.7:40000 -> 192.0.2.10:80`.
    pub fn describe(&self) -> String {
        format!("{} {} -> {}", self.protocol, self.source, self.destination)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainView {
    pub flow: String,
    pub vip: String,
    pub backend: Option<IpAddr>,
    pub backend_id: Option<u32>,
    /// `flow-table` (established flow), `ring` (a new flow would be scheduled) or `none`.
    pub source: String,
    /// The flow-table entry's phase: `new` (no entry), `attempt`, `established`, `closing`,
    /// `ended` (see `lb_common::flow::Phase`).
    pub phase: String,
    pub hash: u32,
    pub slot: u32,
    pub ring_size: u32,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// The configuration file's text (TOML).
    pub toml: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffView {
    /// One line per change, e.g. `+ backend 198.18.0.24 (weight 100) to tcp 198.18.100.1:80`.
    pub changes: Vec<String>,
    pub applied: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
