//! The TOML configuration file: parsed strictly (unknown keys and wrong types are errors) and
//! validated as a whole before anything touches the kernel.
//!
//! ```toml
//! [dataplane]                        # optional
//! flow_table_size = 1048576          # LRU entries
//! ring_slots = 4194368               # ring table capacity for all VIPs (2 rings each)
//! encap_source_v4 = "198.18.200.0/24" # outer IPv4 sources; host bits vary per flow
//! encap_source_v6 = "2001:db8:200::/96"
//!
//! [[vip]]
//! address = "198.18.100.1"
//! port = 80
//! protocol = "tcp"                   # tcp | udp
//! ring_size = 65537                  # optional, prime
//! new_flow_limit = 200000            # optional: new flows/s into the flow table (SYN-flood guard)
//! all_backends_down = "fail-open"    # optional: or "drop" (new flows when every backend is down)
//! slow_start = "10s"                 # optional: weight ramp of a recovered/added backend (0s: off)
//! drain_timeout = "60s"              # optional: default timeout of `sheave backend drain`
//! [vip.health_check]                 # optional (see health.rs): tcp | http | https | udp | exec
//! type = "http"
//! path = "/healthz"
//! [[vip.backend]]
//! address = "198.18.0.21"
//! weight = 100                       # optional, 0-65535, default 100; 0 = no new flows
//! [vip.backend.health_check]         # optional: keys that differ for this backend
//! port = 8080
//! ```
use std::{collections::HashSet, fmt, net::IpAddr, path::Path};

use anyhow::{Context as _, Result, bail, ensure};
use lb_common::limits::{
    DEFAULT_FLOWS, DEFAULT_RING_SIZE, DEFAULT_RING_SLOTS, MAX_BACKENDS, MAX_VIPS,
};
use serde::{Deserialize, Serialize};

use crate::wire::Prefix;

pub mod address;
mod health;
pub mod outlier;
pub use health::{AllDown, DEFAULT_DRAIN_TIMEOUT, HealthCheckConfig, VipPolicy, resolve_check};

/// Upper bound for a VIP's Maglev table: keeps one VIP's two ring halves under 8 MiB.
pub const MAX_RING_SIZE: u32 = 1_048_573;
pub const DEFAULT_WEIGHT: u16 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::vip::IPPROTO_TCP,
            Protocol::Udp => lb_common::vip::IPPROTO_UDP,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => bail!("unknown protocol {s:?}: expected tcp or udp"),
        }
    }
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub dataplane: DataplaneOptions,
    pub vips: Vec<Vip>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneOptions {
    pub flow_table_size: u32,
    /// Capacity of the ring table shared by all VIPs (each VIP takes two rings).
    pub ring_slots: u32,
    /// Outer-source prefixes; `None` means "the interface's own address".
    pub encap_source_v4: Option<Prefix>,
    pub encap_source_v6: Option<Prefix>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub ring_size: u32,
    /// New flows per second allowed into the flow table (0: no limit).
    pub new_flow_limit: u32,
    pub policy: VipPolicy,
    pub backends: Vec<BackendRef>,
}

impl Vip {
    pub fn key(&self) -> lb_common::vip::VipKey {
        crate::wire::vip_key(self.address, self.port, self.protocol)
    }

    /// How operators and logs name a VIP: `tcp 198.18.100.1:80`, `udp [2001:db8::1]:53`.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            self.protocol,
            std::net::SocketAddr::new(self.address, self.port)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRef {
    pub address: IpAddr,
    pub weight: u16,
    /// Keys of the VIP's health check that differ for this backend.
    pub health_check: Option<HealthCheckConfig>,
}

// The file's shape, deserialized strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    dataplane: FileDataplane,
    #[serde(default, rename = "vip")]
    vips: Vec<FileVip>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDataplane {
    flow_table_size: Option<u32>,
    ring_slots: Option<u32>,
    encap_source_v4: Option<String>,
    encap_source_v6: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVip {
    address: String,
    port: u16,
    protocol: Protocol,
    ring_size: Option<u32>,
    #[serde(default)]
    new_flow_limit: u32,
    #[serde(default)]
    all_backends_down: AllDown,
    #[serde(default, with = "humantime_serde")]
    slow_start: std::time::Duration,
    #[serde(default, with = "humantime_serde::option")]
    drain_timeout: Option<std::time::Duration>,
    health_check: Option<HealthCheckConfig>,
    outlier_detection: Option<outlier::OutlierConfig>,
    #[serde(default, rename = "backend")]
    backends: Vec<FileBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    address: String,
    #[serde(default = "default_weight")]
    weight: u16,
    health_check: Option<HealthCheckConfig>,
}

fn default_weight() -> u16 {
    DEFAULT_WEIGHT
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let file: FileConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let dataplane = DataplaneOptions {
            flow_table_size: file.dataplane.flow_table_size.unwrap_or(DEFAULT_FLOWS),
            ring_slots: file.dataplane.ring_slots.unwrap_or(DEFAULT_RING_SLOTS),
            encap_source_v4: parse_prefix(file.dataplane.encap_source_v4, "encap_source_v4", 4)?,
            encap_source_v6: parse_prefix(file.dataplane.encap_source_v6, "encap_source_v6", 6)?,
        };
        ensure!(
            dataplane.flow_table_size >= 1024,
            "dataplane.flow_table_size = {} is too small (minimum 1024)",
            dataplane.flow_table_size
        );
        ensure!(
            !file.vips.is_empty(),
            "no [[vip]] defined: nothing to load-balance"
        );
        ensure!(
            file.vips.len() <= MAX_VIPS as usize,
            "{} VIPs configured, at most {MAX_VIPS} are supported",
            file.vips.len()
        );
        let mut seen = HashSet::new();
        let mut vips = Vec::with_capacity(file.vips.len());
        for (i, v) in file.vips.into_iter().enumerate() {
            let vip = validate_vip(v).with_context(|| format!("in [[vip]] #{}", i + 1))?;
            ensure!(
                seen.insert((vip.address, vip.port, vip.protocol)),
                "[[vip]] #{}: {} is defined twice",
                i + 1,
                vip.name()
            );
            vips.push(vip);
        }
        let distinct: HashSet<IpAddr> = vips
            .iter()
            .flat_map(|v| v.backends.iter().map(|b| b.address))
            .collect();
        ensure!(
            distinct.len() <= MAX_BACKENDS as usize,
            "{} distinct backends configured, at most {MAX_BACKENDS} are supported",
            distinct.len()
        );
        Ok(Config { dataplane, vips })
    }
}

fn validate_vip(v: FileVip) -> Result<Vip> {
    let address: IpAddr = v
        .address
        .parse()
        .map_err(|_| anyhow::anyhow!("address {:?} is not an IP address", v.address))?;
    if let Some(why) = address::unusable(address) {
        bail!("address {address}: {why} cannot be a VIP");
    }
    ensure!(v.port != 0, "port 0 cannot be a VIP port");
    let ring_size = v.ring_size.unwrap_or(DEFAULT_RING_SIZE);
    ensure!(
        is_prime(ring_size) && ring_size <= MAX_RING_SIZE,
        "ring_size {ring_size} must be a prime no larger than {MAX_RING_SIZE} (e.g. 65537)"
    );
    ensure!(
        !v.backends.is_empty(),
        "VIP {} has no backend: add at least one [[vip.backend]]",
        SocketAddrDisplay(address, v.port)
    );
    ensure!(
        v.backends.len() as u64 * 10 <= ring_size as u64,
        "ring_size {ring_size} is too small for {} backends (needs at least 10 slots each)",
        v.backends.len()
    );
    let mut seen = HashSet::new();
    let mut backends = Vec::with_capacity(v.backends.len());
    for (j, b) in v.backends.into_iter().enumerate() {
        let baddr: IpAddr = b.address.parse().map_err(|_| {
            anyhow::anyhow!(
                "backend #{}: address {:?} is not an IP address",
                j + 1,
                b.address
            )
        })?;
        if let Some(why) = address::unusable(baddr) {
            bail!(
                "backend #{}: address {baddr}: {why} cannot be a backend",
                j + 1
            );
        }
        ensure!(
            baddr != address,
            "backend #{}: {baddr} is the VIP's own address (packets would loop)",
            j + 1
        );
        ensure!(
            seen.insert(baddr),
            "backend {baddr} is listed twice for this VIP"
        );
        // A mistake in [vip.health_check] is reported there, not against the first backend
        // that inherits it; a backend's own override is reported with the backend.
        resolve_check(v.health_check.as_ref(), b.health_check.as_ref(), v.port).map_err(|e| {
            if b.health_check.is_some() {
                anyhow::anyhow!("backend {baddr}: [vip.backend.health_check]: {e:#}")
            } else {
                anyhow::anyhow!("[vip.health_check]: {e:#}")
            }
        })?;
        backends.push(BackendRef {
            address: baddr,
            weight: b.weight,
            health_check: b.health_check,
        });
    }
    let policy = VipPolicy {
        all_backends_down: v.all_backends_down,
        slow_start: v.slow_start,
        drain_timeout: v.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        health_check: v.health_check,
        outlier_detection: v.outlier_detection,
    };
    validate_policy(&policy)?;
    ensure!(
        policy.outlier_detection.is_none() || v.protocol == Protocol::Tcp,
        "outlier_detection applies to TCP VIPs only: UDP has no handshake whose answer \
         shows a backend is serving"
    );
    Ok(Vip {
        address,
        port: v.port,
        protocol: v.protocol,
        ring_size,
        new_flow_limit: v.new_flow_limit,
        policy,
        backends,
    })
}

/// Checks of a VIP's policy beyond its check (validated per backend with overrides merged).
pub fn validate_policy(p: &VipPolicy) -> Result<()> {
    if let Some(o) = &p.outlier_detection {
        o.validate()?;
    }
    ensure!(
        p.slow_start <= std::time::Duration::from_secs(3600),
        "slow_start {:?} is longer than an hour",
        p.slow_start
    );
    ensure!(
        p.drain_timeout >= std::time::Duration::from_secs(1)
            && p.drain_timeout <= std::time::Duration::from_secs(7 * 86400),
        "drain_timeout {:?} must be between 1s and 7 days",
        p.drain_timeout
    );
    Ok(())
}

fn parse_prefix(s: Option<String>, key: &str, family: u8) -> Result<Option<Prefix>> {
    let Some(s) = s else { return Ok(None) };
    let p: Prefix = s
        .parse()
        .with_context(|| format!("dataplane.{key} = {s:?}"))?;
    ensure!(
        p.family() == family,
        "dataplane.{key} = {s:?} is not an IPv{family} prefix"
    );
    Ok(Some(p))
}

struct SocketAddrDisplay(IpAddr, u16);
impl fmt::Display for SocketAddrDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        std::net::SocketAddr::new(self.0, self.1).fmt(f)
    }
}

pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n as u64 {
        if (n as u64).is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [dataplane]
        encap_source_v4 = "198.18.200.0/24"
        [[vip]]
        address = "198.18.100.1"
        port = 80
        protocol = "tcp"
        [[vip.backend]]
        address = "198.18.0.21"
        [[vip.backend]]
        address = "198.18.0.22"
        weight = 50
    "#;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.vips[0].ring_size, DEFAULT_RING_SIZE);
        assert_eq!(c.vips[0].backends[0].weight, DEFAULT_WEIGHT);
        assert_eq!(c.vips[0].backends[1].weight, 50);
        assert_eq!(c.dataplane.flow_table_size, DEFAULT_FLOWS);
        assert_eq!(c.dataplane.encap_source_v4.unwrap().len, 24);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err(&GOOD.replace("port = 80", "port = 80\nprot = 1"));
        assert!(e.contains("unknown field `prot`"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err(&GOOD.replace("port = 80", "port = \"eighty\""));
        assert!(e.contains("port") && e.contains("invalid type"), "{e}");
        let e = err(&GOOD.replace("weight = 50", "weight = 70000"));
        assert!(e.contains("weight"), "{e}");
    }

    #[test]
    fn bad_addresses_are_named() {
        let e = err(&GOOD.replace("\"198.18.100.1\"", "\"198.18.100.300\""));
        assert!(e.contains("198.18.100.300") && e.contains("vip"), "{e}");
        let e = err(&GOOD.replace("\"198.18.0.22\"", "\"backend-two\""));
        assert!(e.contains("backend #2") && e.contains("backend-two"), "{e}");
        let e = err(&GOOD.replace("198.18.200.0/24", "198.18.200.1/24"));
        assert!(e.contains("host bits"), "{e}");
    }

    #[test]
    fn vip_without_backend_is_refused() {
        let text = r#"
            [[vip]]
            address = "198.18.100.1"
            port = 80
            protocol = "tcp"
        "#;
        assert!(err(text).contains("has no backend"), "{}", err(text));
    }

    #[test]
    fn other_mistakes_are_refused() {
        assert!(err(&GOOD.replace("\"tcp\"", "\"sctp\"")).contains("unknown variant"));
        assert!(err(&GOOD.replace("port = 80", "port = 80\nring_size = 65536")).contains("prime"));
        assert!(err(&GOOD.replace("198.18.0.22", "198.18.0.21")).contains("listed twice"));
        let dup = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[vip]]").unwrap()..]);
        assert!(err(&dup).contains("defined twice"), "{}", err(&dup));
        assert!(err("").contains("no [[vip]]"));
    }
}
