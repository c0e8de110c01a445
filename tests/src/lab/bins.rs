//! Finding the lab's programs (and the caller's `sheaved`/`sheave`) next to the running binary.

use std::env;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Overrides where [`bin_path`] looks.
pub const BIN_DIR_ENV: &str = "SHEAVE_BIN_DIR";

/// The path of program `name` (e.g. `sheave-lab-http`): in `$SHEAVE_BIN_DIR` if set, else next
/// to the current executable or one level up (integration tests run from `target/<profile>/deps`,
/// binaries sit in `target/<profile>`).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let file = format!("{name}{}", env::consts::EXE_SUFFIX);
    if let Some(dir) = env::var_os(BIN_DIR_ENV) {
        let p = PathBuf::from(&dir).join(&file);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "{BIN_DIR_ENV}={} has no {file}",
            PathBuf::from(dir).display()
        );
    }
    let exe = env::current_exe().context("locating the current executable")?;
    let dirs: Vec<PathBuf> = exe.ancestors().skip(1).take(2).map(Into::into).collect();
    if let Some(p) = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
        return Ok(p);
    }
    bail!(
        "{file} not found in {}; build it (cargo build -p sheave-tests --bins) or set {BIN_DIR_ENV}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )
}
