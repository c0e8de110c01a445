//! Everything a lab owns outside this process (namespaces, scratch directory, its name prefix),
//! recorded as it is created so that a half-built lab is cleaned up as well as a whole one.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::{KEEP_ENV, netns};

/// Lines of each log [`Resources::print_logs`] shows.
const LOG_TAIL_LINES: usize = 200;
/// Scratch directories are `<temp dir>/sheave-lab-<prefix>-<secs>[.<n>]`.
const DIR_PREFIX: &str = "sheave-lab-";
/// Marks a directory kept on purpose (`SHEAVE_LAB_KEEP=1`): the sweep leaves it alone.
const KEPT_MARKER: &str = ".kept";

#[derive(Debug)]
pub(crate) struct Resources {
    prefix: String,
    /// In creation order: the switch first, then the hosts.
    namespaces: Vec<String>,
    dir: PathBuf,
    released: bool,
}

impl Resources {
    /// Claims a name prefix and creates the scratch directory.
    pub(crate) fn new(tag: &str) -> Result<Resources> {
        let prefix = netns::claim_prefix(tag)?;
        let dir = match make_dir(&prefix) {
            Ok(d) => d,
            Err(e) => {
                netns::release_prefix(&prefix);
                return Err(e);
            }
        };
        Ok(Resources {
            prefix,
            namespaces: Vec::new(),
            dir,
            released: false,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates namespace `<prefix>-<role>` with `lo` up and records it for cleanup.
    pub(crate) fn add_netns(&mut self, role: &str) -> Result<String> {
        let name = format!("{}-{role}", self.prefix);
        netns::add(&name)?;
        self.namespaces.push(name.clone());
        netns::ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Kills what runs in the namespaces, deletes them (hosts first: they hold the processes;
    /// deleting the switch then destroys the veths), removes the directory unless kept.
    /// Idempotent; reports every failure but always tries every step.
    pub(crate) fn release(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let mut errors = Vec::new();
        for name in self.namespaces.iter().rev() {
            if let Err(e) = netns::delete(name) {
                errors.push(format!("{name}: {e:#}"));
            }
        }
        if std::env::var(KEEP_ENV).is_ok_and(|v| v == "1") {
            eprintln!("sheave lab: keeping {} ({KEEP_ENV}=1)", self.dir.display());
            if let Err(e) = fs::write(self.dir.join(KEPT_MARKER), b"") {
                errors.push(format!("marking {} kept: {e}", self.dir.display()));
            }
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            errors.push(format!("removing {}: {e}", self.dir.display()));
        }
        // Released even on failure: a later sweep_stale() in this process may then retry.
        netns::release_prefix(&self.prefix);
        if !errors.is_empty() {
            bail!("tearing down lab {}: {}", self.prefix, errors.join("; "));
        }
        Ok(())
    }

    pub(crate) fn print_logs(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for p in logs {
            let Ok(f) = fs::File::open(&p) else { continue };
            let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
            eprintln!("----- {} ({} lines) -----", p.display(), lines.len());
            for l in &lines[skip..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("sheave lab: {e:#}");
        }
    }
}

/// Removes the scratch directories of labs whose process died before tearing them down, unless
/// kept on purpose. Returns the paths removed.
pub(crate) fn sweep_stale_dirs() -> Result<Vec<PathBuf>> {
    let tmp = std::env::temp_dir();
    let entries = fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))?;
    let mut swept = Vec::new();
    let mut errors = Vec::new();
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(prefix) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let dir = entry.path();
        if !netns::is_stale_prefix(prefix) || dir.join(KEPT_MARKER).exists() || !dir.is_dir() {
            continue;
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => swept.push(dir),
            // A concurrent sweep got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("{}: {e}", dir.display())),
        }
    }
    if !errors.is_empty() {
        bail!("could not sweep: {}", errors.join("; "));
    }
    Ok(swept)
}

/// A fresh `sheave-lab-<prefix>-<secs>` under the temp dir; the time keeps a kept directory of an
/// earlier process with the same pid from being reused.
fn make_dir(prefix: &str) -> Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = std::env::temp_dir().join(format!("{DIR_PREFIX}{prefix}-{secs}"));
    for n in 0..100 {
        let d = if n == 0 {
            base.clone()
        } else {
            base.with_extension(n.to_string())
        };
        match fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
    }
    bail!("cannot create a scratch directory like {}", base.display())
}
