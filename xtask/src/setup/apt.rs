//! Debian packages: what is installed (dpkg-query) and installing what is missing (apt-get, root
//! only). `apt-get update` runs at most once per setup, and only when something is missing.

use std::process::Command;

use anyhow::{Result, bail};

use super::{act, warn};
use crate::cmd::{self, capture};

/// Seconds apt-get waits for the dpkg lock: a fresh machine is often still running
/// unattended-upgrades, and failing at once would make CI flaky.
const LOCK_TIMEOUT_S: u32 = 300;

#[derive(Debug)]
pub struct Apt {
    /// dpkg-query and apt-get exist: a Debian-like system.
    debian: bool,
    updated: bool,
}

impl Apt {
    pub fn detect() -> Apt {
        Apt {
            debian: cmd::which("dpkg-query").is_some() && cmd::which("apt-get").is_some(),
            updated: false,
        }
    }

    pub fn is_debian(&self) -> bool {
        self.debian
    }

    /// Whether apt may be used here: Debian-like and root (a developer's own machine without
    /// root gets instructions instead).
    pub fn can_install(&self) -> bool {
        self.debian && cmd::is_root()
    }

    /// The packages of `pkgs` that are not installed, in order.
    pub fn missing(&self, pkgs: &[&str]) -> Result<Vec<String>> {
        let mut c = Command::new("dpkg-query");
        c.arg("-W").arg("-f=${Package} ${Status}\n").args(pkgs);
        // Exit status 1 only says some package is unknown; those are simply absent below.
        let out = capture(&mut c)?;
        let installed: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next()?;
                // `${Status}` is "want flag status", e.g. "install ok installed" or
                // "hold ok installed"; "deinstall ok config-files" is a removed package.
                (w.nth(2) == Some("installed")).then_some(name)
            })
            .collect();
        Ok(pkgs
            .iter()
            .filter(|p| !installed.contains(p))
            .map(|p| p.to_string())
            .collect())
    }

    /// Whether apt knows an installable version of `pkg` (after an update if one ran).
    pub fn has_candidate(&self, pkg: &str) -> bool {
        let out = capture(Command::new("apt-cache").args(["policy", pkg]));
        out.is_ok_and(|o| {
            o.stdout
                .lines()
                .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)"))
        })
    }

    /// Installs `pkgs` (root only), running `apt-get update` first if not yet done.
    pub fn install(&mut self, pkgs: &[String]) -> Result<()> {
        if pkgs.is_empty() {
            return Ok(());
        }
        if !self.can_install() {
            bail!(
                "installing Debian packages needs root: {}",
                install_hint(pkgs)
            );
        }
        self.update();
        act(&format!("installing {}", pkgs.join(" ")));
        cmd::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .arg("-o")
                .arg(format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"))
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(pkgs),
        )
        .map(drop)
        .map_err(|e| e.context(format!("apt-get could not install {}", pkgs.join(" "))))
    }

    /// `apt-get update`, once. A failure is only a warning: one unreachable third-party source
    /// fails the update even though the Debian archive, all we need, may be fine.
    pub fn update(&mut self) {
        if self.updated || !self.can_install() {
            return;
        }
        self.updated = true;
        act("refreshing the package lists (apt-get update)");
        let r = cmd::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .arg("-o")
                .arg(format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"))
                .args(["update", "-q"]),
        );
        if let Err(e) = r {
            warn(&format!("{e:#}; trying the install anyway"));
        }
    }
}

/// The command a user should run to install `pkgs` themselves.
pub fn install_hint(pkgs: &[String]) -> String {
    format!(
        "sudo apt-get update && sudo apt-get install --no-install-recommends {}",
        pkgs.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_missing_packages() {
        let apt = Apt::detect();
        // Needs a Debian system with procps (which provides `ps`) installed.
        if !apt.is_debian() || apt.missing(&["procps"]).map_or(true, |m| !m.is_empty()) {
            eprintln!("SKIPPED: not a Debian system with procps");
            return;
        }
        let missing = apt.missing(&["procps", "sheave-no-such-package"]).unwrap();
        assert_eq!(missing, ["sheave-no-such-package"]);
    }
}
