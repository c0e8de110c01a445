//! The third-party programs the `lab` section compares against: HAProxy (Debian's 2.6) and
//! iperf3. They are only needed here, so the section installs them on demand rather than making
//! every `cargo xtask setup` pull them in: one `apt-get update` and one `apt-get install`, only
//! for what is missing, so a second run only checks.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, capture};
use crate::setup::{act, ok, warn};

/// (program, Debian package).
const NEEDED: [(&str, &str); 2] = [("haproxy", "haproxy"), ("iperf3", "iperf3")];
/// Seconds apt-get waits for the dpkg lock (another apt run, unattended-upgrades).
const LOCK_TIMEOUT_S: u32 = 300;

/// What the comparison ran against, for the table and the record.
#[derive(Debug, Clone)]
pub struct Versions {
    pub haproxy: String,
    pub iperf3: String,
}

/// Makes sure `haproxy` and `iperf3` are on PATH, installing the missing ones with apt-get;
/// returns their versions.
pub fn ensure() -> Result<Versions> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(program, _)| cmd::which(program).is_none())
        .map(|&(_, pkg)| pkg)
        .collect();
    if !missing.is_empty() {
        install(&missing)?;
    }
    let versions = Versions {
        haproxy: version("haproxy", "-v")?,
        iperf3: version("iperf3", "--version")?,
    };
    ok(&format!("{} and {}", versions.haproxy, versions.iperf3));
    Ok(versions)
}

fn install(pkgs: &[&str]) -> Result<()> {
    let apt = cmd::which("apt-get").is_some() && cmd::which("dpkg-query").is_some();
    if !apt || !cmd::is_root() {
        bail!(
            "the lab benchmark compares against {0}; install them (Debian: apt-get install \
             --no-install-recommends {0}) and run it again",
            pkgs.join(" ")
        );
    }
    act(&format!(
        "{} missing: installing with apt-get (once; later runs only check)",
        pkgs.join(" ")
    ));
    let apt_get = || {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .arg("-o")
            .arg(format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"));
        c
    };
    // A failed update (one unreachable extra source) need not stop the install: the lists may
    // already hold the Debian archive's.
    if let Err(e) = cmd::run(apt_get().args(["update", "-q"])) {
        warn(&format!("{e:#}; trying the install anyway"));
    }
    cmd::run(
        apt_get()
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(pkgs),
    )
    .with_context(|| format!("apt-get could not install {}", pkgs.join(" ")))?;
    if pkgs.contains(&"haproxy") && std::path::Path::new("/run/systemd/system").is_dir() {
        // Debian enables its own haproxy.service on install; its stock configuration listens
        // nowhere, and the bench runs a separate instance inside the lab.
        warn(
            "Debian also enabled haproxy.service (stock config, no listeners); the bench does not use it",
        );
    }
    if let Some((program, _)) = NEEDED.iter().find(|(p, _)| cmd::which(p).is_none()) {
        bail!("{program} is still not on PATH after installing it");
    }
    Ok(())
}

/// The first line of `program flag`, e.g. `HAProxy version 2.6.12-1+deb12u4 2025/...` or
/// `iperf 3.12 (cJSON 1.7.15)`, shortened to name and version.
fn version(program: &str, flag: &str) -> Result<String> {
    let out = capture(Command::new(program).arg(flag))?;
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    let words: Vec<&str> = first.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["HAProxy", "version", v, ..] => format!("HAProxy {v}"),
        ["iperf", v, ..] => format!("iperf3 {v}"),
        _ if !first.is_empty() => first,
        _ => bail!("`{program} {flag}` printed no version ({})", out.status),
    })
}
