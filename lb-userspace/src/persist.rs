//! Desired state on disk, so changes made through the API survive a restart of `sheaved`.
//!
//! Written atomically: a temporary file in the same directory is written and fsynced, renamed
//! over the old one, and the directory fsynced, so a crash leaves the old or the new file, never
//! a torn one. The file records a digest of the configuration file it was derived from: at
//! start-up the configuration stays the declarative source, and saved API changes are used only
//! while that configuration is unchanged.
use std::{
    fs,
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    config::{DataplaneOptions, HealthCheckConfig},
    state::{DrainRequest, State, StateError, VipSpec},
};

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Persisted {
    version: u32,
    /// xxh64 of the configuration file text this state started from.
    config_digest: String,
    vips: Vec<PersistedVip>,
    /// Backends the operator disabled.
    #[serde(default)]
    disabled: Vec<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct PersistedVip {
    #[serde(flatten)]
    spec: VipSpec,
    backends: Vec<PersistedBackend>,
}

#[derive(Serialize, Deserialize)]
struct PersistedBackend {
    address: IpAddr,
    weight: u16,
    draining: bool,
    /// When an operator drain ends at the latest (ms since the Unix epoch).
    #[serde(default)]
    drain_deadline_ms: Option<u64>,
    #[serde(default)]
    health_check: Option<HealthCheckConfig>,
}

pub struct Store {
    path: PathBuf,
    config_digest: String,
}

/// A digest identifying a configuration file's content.
pub fn digest(config_text: &str) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh64::xxh64(config_text.as_bytes(), 0)
    )
}

impl Store {
    pub fn new(path: PathBuf, config_text: &str) -> Store {
        Store {
            path,
            config_digest: digest(config_text),
        }
    }

    /// The configuration file changed (a reload): saved state now belongs to it.
    pub fn set_config(&mut self, config_text: &str) {
        self.config_digest = digest(config_text);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, if there is one for this configuration. A state saved for another
    /// configuration is ignored (with the reason), since the configuration file wins.
    pub fn load(
        &self,
        options: &DataplaneOptions,
        ring_capacity: u32,
        adopted: Option<&crate::dataplane::pins::Adopted>,
    ) -> Result<Option<State>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let p: Persisted = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Sheave state file", self.path.display()))?;
        if p.version != FORMAT_VERSION {
            bail!(
                "{} has format version {}, this sheaved reads {FORMAT_VERSION}",
                self.path.display(),
                p.version
            );
        }
        if p.config_digest != self.config_digest {
            log::warn!(
                "the configuration file changed since {} was saved: starting from the \
                 configuration, API changes made before are dropped",
                self.path.display()
            );
            return Ok(None);
        }
        let mut s = State::new(options.clone(), ring_capacity);
        if let Some(a) = adopted {
            s.adopt(a);
        }
        let restore = |s: &mut State| -> Result<(), StateError> {
            for v in &p.vips {
                s.add_vip(v.spec.clone())?;
                for b in &v.backends {
                    s.add_backend(&v.spec.key(), b.address, b.weight)?;
                    s.set_member_check(&v.spec.key(), b.address, b.health_check.clone())?;
                    if b.draining {
                        // What was left of the drain's time (all of it if unknown).
                        let left = b
                            .drain_deadline_ms
                            .map(|ms| {
                                (UNIX_EPOCH + Duration::from_millis(ms))
                                    .duration_since(SystemTime::now())
                                    .unwrap_or_default()
                            })
                            .unwrap_or(v.spec.policy.drain_timeout);
                        let timeout = left.max(Duration::from_millis(1));
                        s.update_member(
                            &v.spec.key(),
                            b.address,
                            None,
                            Some(DrainRequest::Start { timeout }),
                        )?;
                    }
                }
            }
            for &a in &p.disabled {
                s.set_disabled(a, true)?;
            }
            s.skip_slow_start();
            Ok(())
        };
        restore(&mut s).with_context(|| format!("restoring {}", self.path.display()))?;
        Ok(Some(s))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let p = Persisted {
            version: FORMAT_VERSION,
            config_digest: self.config_digest.clone(),
            vips: state
                .vips
                .iter()
                .map(|v| PersistedVip {
                    spec: v.spec.clone(),
                    backends: v
                        .members
                        .iter()
                        .map(|m| PersistedBackend {
                            address: state.backend_address(m.backend_id),
                            weight: m.weight,
                            draining: m.draining(),
                            drain_deadline_ms: m.drain.map(|d| {
                                d.deadline
                                    .duration_since(UNIX_EPOCH)
                                    .unwrap_or_default()
                                    .as_millis() as u64
                            }),
                            health_check: m.health_check.clone(),
                        })
                        .collect(),
                })
                .collect(),
            disabled: state
                .backends()
                .filter(|&(id, _)| state.backend_disabled(id))
                .map(|(_, a)| a)
                .collect(),
        };
        let text = serde_json::to_string_pretty(&p)?;
        write_atomically(&self.path, text.as_bytes())
    }
}

/// Replace `path` with `data` so that readers (and a crash) see the old or the new content.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}
