//! `[vip.outlier_detection]`: passive circuit breaking, as written in the configuration, with
//! its validation (errors name the key). What it does is [`crate::outlier`]'s.
use std::time::Duration;

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

/// A VIP's outlier detection settings. Every key is optional; the section's presence turns it
/// on (`enabled = false` keeps it written but off).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Unanswered attempts in a row (no answered one between them) that eject a backend.
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// Also eject when this share of the attempts judged in `window` went unanswered, once
    /// there were at least `min_attempts` of them. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<Ratio>,
    #[serde(default = "default_min_attempts")]
    pub min_attempts: u32,
    /// The sliding window `failure_ratio` looks at.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// The first ejection lasts this long; each later one of the same backend, once more as
    /// long (2nd: twice, 3rd: three times ...), up to `max_ejection_time`.
    #[serde(default = "default_base", with = "humantime_serde")]
    pub base_ejection_time: Duration,
    #[serde(default = "default_max", with = "humantime_serde")]
    pub max_ejection_time: Duration,
    /// Never more than this share of the VIP's backends ejected at once: when a whole pool
    /// looks broken, the balancer is more likely wrong than every server.
    #[serde(default = "default_percent")]
    pub max_ejection_percent: u32,
}

/// A share between 0 and 1, comparable exactly (its bits), as TOML's float gives it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ratio(pub f64);

impl Eq for Ratio {}

fn yes() -> bool {
    true
}
fn default_consecutive() -> u32 {
    5
}
fn default_min_attempts() -> u32 {
    10
}
fn default_window() -> Duration {
    Duration::from_secs(5)
}
fn default_base() -> Duration {
    Duration::from_secs(30)
}
fn default_max() -> Duration {
    Duration::from_secs(300)
}
fn default_percent() -> u32 {
    50
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            consecutive_failures: default_consecutive(),
            failure_ratio: None,
            min_attempts: default_min_attempts(),
            window: default_window(),
            base_ejection_time: default_base(),
            max_ejection_time: default_max(),
            max_ejection_percent: default_percent(),
        }
    }
}

impl OutlierConfig {
    /// Refuse what cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        let k = "outlier_detection";
        ensure!(
            (1..=1000).contains(&self.consecutive_failures),
            "{k}.consecutive_failures = {}: must be 1-1000",
            self.consecutive_failures
        );
        if let Some(Ratio(r)) = self.failure_ratio {
            ensure!(
                r > 0.0 && r <= 1.0,
                "{k}.failure_ratio = {r}: must be above 0 and at most 1"
            );
        }
        ensure!(
            (1..=1_000_000).contains(&self.min_attempts),
            "{k}.min_attempts = {}: must be 1-1000000",
            self.min_attempts
        );
        ensure!(
            self.window >= Duration::from_millis(100) && self.window <= Duration::from_secs(3600),
            "{k}.window = {:?}: must be between 100ms and 1h",
            self.window
        );
        ensure!(
            self.base_ejection_time >= Duration::from_secs(1)
                && self.base_ejection_time <= Duration::from_secs(3600),
            "{k}.base_ejection_time = {:?}: must be between 1s and 1h",
            self.base_ejection_time
        );
        ensure!(
            self.max_ejection_time >= self.base_ejection_time
                && self.max_ejection_time <= Duration::from_secs(86400),
            "{k}.max_ejection_time = {:?}: must be at least base_ejection_time ({:?}) and at \
             most 24h",
            self.max_ejection_time,
            self.base_ejection_time
        );
        ensure!(
            self.max_ejection_percent <= 100,
            "{k}.max_ejection_percent = {}: must be 0-100",
            self.max_ejection_percent
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OutlierConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_mistakes_named() {
        let d = parse("");
        assert_eq!(d, OutlierConfig::default());
        d.validate().unwrap();
        let e = |t: &str| format!("{:#}", parse(t).validate().unwrap_err());
        assert!(e("consecutive_failures = 0").contains("outlier_detection.consecutive_failures"));
        assert!(e("failure_ratio = 1.5").contains("outlier_detection.failure_ratio"));
        assert!(e("failure_ratio = 0.0").contains("failure_ratio"));
        assert!(e("max_ejection_percent = 101").contains("max_ejection_percent"));
        assert!(
            e("base_ejection_time = \"10m\"\nmax_ejection_time = \"1m\"")
                .contains("outlier_detection.max_ejection_time")
        );
        assert!(e("window = \"1ms\"").contains("outlier_detection.window"));
        assert!(toml::from_str::<OutlierConfig>("consecutive = 3").is_err());
    }
}
