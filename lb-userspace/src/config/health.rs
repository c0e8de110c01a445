//! A VIP's health and lifecycle policy as written in the configuration (`[vip.health_check]`,
//! `[vip.backend.health_check]`, `slow_start`, `drain_timeout`, `all_backends_down`), and its
//! validation into the [`CheckSpec`] the checkers run.
//!
//! The written form is kept as-is in the desired state (so it round-trips through persistence
//! and `config diff`); [`resolve_check`] turns a VIP's check plus a backend's override into what
//! runs, and refuses anything that does not make sense, naming the key.
use std::{fmt, time::Duration};

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::health::spec::{
    CheckSpec, DEFAULT_FALL, DEFAULT_FAST_INTERVAL, DEFAULT_INTERVAL, DEFAULT_JITTER, DEFAULT_RISE,
    DEFAULT_TIMEOUT, ExecProbe, HttpProbe, InitialState, Probe, TlsOptions, UdpProbe,
};

/// Default time a drained backend's flows get before it leaves the VIP anyway.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a VIP does for new flows when every backend is down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDown {
    /// Keep sending to the backends known last (health checks may be what is broken).
    #[default]
    FailOpen,
    /// Drop new flows.
    Drop,
}

impl fmt::Display for AllDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllDown::FailOpen => "fail-open",
            AllDown::Drop => "drop",
        })
    }
}

/// A VIP's lifecycle settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipPolicy {
    #[serde(default)]
    pub all_backends_down: AllDown,
    /// A recovered or newly added backend's weight ramps up over this window (0: at once).
    #[serde(default, with = "humantime_serde")]
    pub slow_start: Duration,
    /// Default timeout of an operator drain.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Absent: no checks, backends count as up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Absent: no passive outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<super::outlier::OutlierConfig>,
}

fn default_drain_timeout() -> Duration {
    DEFAULT_DRAIN_TIMEOUT
}

impl Default for VipPolicy {
    fn default() -> Self {
        VipPolicy {
            all_backends_down: AllDown::default(),
            slow_start: Duration::ZERO,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            health_check: None,
            outlier_detection: None,
        }
    }
}

/// `[vip.health_check]` or a backend's override, as written; every key optional so an override
/// can name only what differs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// `tcp`, `http`, `https`, `udp`, `exec`; `none` in an override turns checks off.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub fast_interval: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// `down` (default): out of the ring until the first check passes; `up`: in it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<InitialState>,
    // http / https
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<StatusRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_on_status: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    // udp
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    // exec
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// `expect_status`: a number (`200`) or an inclusive range (`"200-399"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusRange {
    One(u16),
    Range(String),
}

impl StatusRange {
    fn bounds(&self) -> Result<(u16, u16)> {
        let (lo, hi) = match self {
            StatusRange::One(s) => (*s, *s),
            StatusRange::Range(r) => {
                let parse = |s: &str| {
                    s.trim().parse::<u16>().map_err(|_| {
                        anyhow::anyhow!("expect_status {r:?}: expected STATUS or LOW-HIGH")
                    })
                };
                match r.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => {
                        let s = parse(r)?;
                        (s, s)
                    }
                }
            }
        };
        ensure!(
            (100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi,
            "expect_status {lo}-{hi}: statuses are 100-599, low first"
        );
        Ok((lo, hi))
    }
}

/// Merge `over` onto `base`: every key `over` sets wins.
fn merge(base: &HealthCheckConfig, over: &HealthCheckConfig) -> HealthCheckConfig {
    macro_rules! pick {
        ($($f:ident),*) => {
            HealthCheckConfig { $($f: over.$f.clone().or_else(|| base.$f.clone()),)* }
        };
    }
    pick!(
        kind,
        port,
        interval,
        fast_interval,
        timeout,
        jitter,
        rise,
        fall,
        initial_state,
        path,
        host,
        expect_status,
        expect_body,
        drain_on_status,
        tls_verify,
        server_name,
        send,
        expect,
        command
    )
}

/// The check a backend of a VIP on `vip_port` runs: the VIP's check with the backend's override
/// merged over it. `None`: no check (the backend counts as up).
pub fn resolve_check(
    vip: Option<&HealthCheckConfig>,
    backend: Option<&HealthCheckConfig>,
    vip_port: u16,
) -> Result<Option<CheckSpec>> {
    let merged = match (vip, backend) {
        (None, None) => return Ok(None),
        (Some(v), None) => v.clone(),
        (None, Some(b)) => b.clone(),
        (Some(v), Some(b)) => merge(v, b),
    };
    let Some(kind) = merged.kind.as_deref() else {
        bail!("health_check needs a type (tcp, http, https, udp, exec or none)");
    };
    if kind == "none" {
        return Ok(None);
    }
    let c = &merged;
    let interval = c.interval.unwrap_or(DEFAULT_INTERVAL);
    ensure!(
        interval >= Duration::from_millis(10) && interval <= Duration::from_secs(3600),
        "health_check interval {interval:?} must be between 10ms and 1h"
    );
    let fast_interval = c
        .fast_interval
        .unwrap_or(DEFAULT_FAST_INTERVAL.min(interval));
    ensure!(
        fast_interval >= Duration::from_millis(10) && fast_interval <= interval,
        "health_check fast_interval {fast_interval:?} must be between 10ms and the interval"
    );
    let timeout = c.timeout.unwrap_or(DEFAULT_TIMEOUT);
    ensure!(
        timeout >= Duration::from_millis(1) && timeout <= Duration::from_secs(60),
        "health_check timeout {timeout:?} must be between 1ms and 60s"
    );
    let jitter = c.jitter.unwrap_or(DEFAULT_JITTER.min(fast_interval / 2));
    ensure!(
        jitter < fast_interval,
        "health_check jitter {jitter:?} must be shorter than the (fast) interval"
    );
    let rise = c.rise.unwrap_or(DEFAULT_RISE);
    let fall = c.fall.unwrap_or(DEFAULT_FALL);
    ensure!(
        (1..=100).contains(&rise) && (1..=100).contains(&fall),
        "health_check rise and fall must be 1-100"
    );
    let probe = match kind {
        "tcp" => {
            only(c, &[])?;
            Probe::Tcp
        }
        "http" | "https" => {
            let tls = kind == "https";
            let mut allowed = vec![
                "path",
                "host",
                "expect_status",
                "expect_body",
                "drain_on_status",
            ];
            if tls {
                allowed.extend(["tls_verify", "server_name"]);
            }
            only(c, &allowed)?;
            let path = c.path.clone().unwrap_or_else(|| "/".into());
            ensure!(
                path.starts_with('/') && !path.chars().any(|ch| ch.is_control() || ch == ' '),
                "health_check path {path:?} must start with / and contain no spaces"
            );
            let expect_status = match &c.expect_status {
                Some(r) => r.bounds()?,
                None => (200, 399),
            };
            let drain_on_status = c.drain_on_status.clone().unwrap_or_default();
            for s in &drain_on_status {
                ensure!(
                    (100..=599).contains(s),
                    "drain_on_status {s}: statuses are 100-599"
                );
            }
            if let Some(h) = &c.host {
                ensure!(
                    !h.is_empty() && !h.chars().any(|ch| ch.is_control() || ch == ' '),
                    "health_check host {h:?} is not a host name"
                );
            }
            Probe::Http(HttpProbe {
                tls: tls.then(|| TlsOptions {
                    verify: c.tls_verify.unwrap_or(false),
                    server_name: c.server_name.clone(),
                }),
                path,
                host: c.host.clone(),
                expect_status,
                expect_body: c.expect_body.clone(),
                drain_on_status,
            })
        }
        "udp" => {
            only(c, &["send", "expect"])?;
            let send = c.send.clone().unwrap_or_default();
            ensure!(
                !send.is_empty(),
                "a udp health_check needs `send` (the datagram to send)"
            );
            Probe::Udp(UdpProbe {
                send: send.into_bytes(),
                expect: c.expect.clone().map(String::into_bytes),
            })
        }
        "exec" => {
            only(c, &["command"])?;
            let command = c.command.clone().unwrap_or_default();
            ensure!(
                command.first().is_some_and(|p| !p.is_empty()),
                "an exec health_check needs `command` (program and arguments)"
            );
            Probe::Exec(ExecProbe { command })
        }
        other => bail!("health_check type {other:?}: expected tcp, http, https, udp, exec or none"),
    };
    Ok(Some(CheckSpec {
        probe,
        port: c.port.unwrap_or(vip_port),
        interval,
        fast_interval,
        timeout,
        jitter,
        rise,
        fall,
        initial: c.initial_state.unwrap_or_default(),
    }))
}

/// Refuse type-specific keys that the check's type does not use (a typo'd type would otherwise
/// silently ignore them).
fn only(c: &HealthCheckConfig, allowed: &[&str]) -> Result<()> {
    let set: [(&str, bool); 10] = [
        ("path", c.path.is_some()),
        ("host", c.host.is_some()),
        ("expect_status", c.expect_status.is_some()),
        ("expect_body", c.expect_body.is_some()),
        ("drain_on_status", c.drain_on_status.is_some()),
        ("tls_verify", c.tls_verify.is_some()),
        ("server_name", c.server_name.is_some()),
        ("send", c.send.is_some()),
        ("expect", c.expect.is_some()),
        ("command", c.command.is_some()),
    ];
    for (key, present) in set {
        if present && !allowed.contains(&key) {
            bail!(
                "health_check key `{key}` does not apply to a {} check",
                c.kind.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> HealthCheckConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_fail_within_a_second() {
        let spec = resolve_check(Some(&cfg("type = \"tcp\"")), None, 80)
            .unwrap()
            .unwrap();
        assert_eq!(spec.port, 80);
        assert_eq!((spec.rise, spec.fall), (2, 3));
        // Worst case: a full interval until the first failing check, then fall-1 fast ones.
        let worst = spec.interval
            + spec.jitter
            + (spec.fall - 1) * (spec.fast_interval + spec.jitter)
            + spec.timeout.min(Duration::from_millis(10));
        assert!(worst < Duration::from_secs(1), "{worst:?}");
    }

    #[test]
    fn override_merges_and_none_turns_off() {
        let vip = cfg("type = \"http\"\npath = \"/health\"\ninterval = \"1s\"");
        let spec = resolve_check(Some(&vip), Some(&cfg("port = 8080")), 80)
            .unwrap()
            .unwrap();
        assert_eq!(spec.port, 8080);
        assert_eq!(spec.interval, Duration::from_secs(1));
        assert!(matches!(&spec.probe, Probe::Http(h) if h.path == "/health"));
        assert!(
            resolve_check(Some(&vip), Some(&cfg("type = \"none\"")), 80)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| format!("{:#}", resolve_check(Some(&cfg(t)), None, 80).unwrap_err());
        assert!(e("type = \"tcp\"\npath = \"/\"").contains("`path`"));
        assert!(e("type = \"smtp\"").contains("smtp"));
        assert!(e("port = 80").contains("needs a type"));
        assert!(e("type = \"http\"\nexpect_status = \"500-200\"").contains("low first"));
        assert!(e("type = \"http\"\nexpect_status = \"ok\"").contains("LOW-HIGH"));
        assert!(e("type = \"exec\"").contains("command"));
        assert!(e("type = \"udp\"").contains("send"));
        assert!(e("type = \"tcp\"\nrise = 0").contains("rise"));
        assert!(e("type = \"tcp\"\ninterval = \"1ms\"").contains("interval"));
        assert!(
            toml::from_str::<HealthCheckConfig>("type = \"tcp\"\ninterval = \"soon\"").is_err()
        );
        assert!(toml::from_str::<HealthCheckConfig>("tpye = \"tcp\"").is_err());
    }
}
