//! `cargo xtask setup`: checks, and installs what is missing of, what building and testing
//! Sheave needs. Every step checks first and says what it found, so a second run only checks
//! (well under a second) and a failure says what to do by hand.
//!
//! Installing system packages needs root and apt; elsewhere (a developer's laptop) setup prints
//! the commands instead of running them.

mod apt;
mod toolchain;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Workspace, capture};
use apt::Apt;
pub use toolchain::BuildEnv;

/// The bpf-linker release the eBPF build is known to work with, and its LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_SERIES: &str = "0.13.";
const BPF_LINKER_LLVM: &str = "llvm-22";
/// Where Debian's llvm-22-dev lives. `llvm-config` on PATH may be another LLVM (Debian 12's
/// default is 14), so bpf-linker's build is pointed here with LLVM_PREFIX.
const DEBIAN_LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// What building bpf-linker against LLVM 22 needs on Debian 12.
const BUILD_PKGS: [&str; 4] = [
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
];
/// What the lab and the tests run: ip, ethtool, nsenter, sysctl/pkill, and the Prometheus
/// server that scrapes `sheaved` in the metrics lab test (tests/tests/lab_metrics.rs).
const LAB_PKGS: [&str; 5] = ["iproute2", "ethtool", "util-linux", "procps", "prometheus"];
/// Handy for looking at programs and maps by hand; installed when available, never required.
const OPTIONAL_PKGS: [&str; 1] = ["bpftool"];
/// The programs behind LAB_PKGS, checked on systems without dpkg.
const LAB_PROGRAMS: [&str; 5] = ["ip", "ethtool", "nsenter", "sysctl", "prometheus"];
/// aya-build 0.2.1 needs rustc 1.98; Cargo.lock must keep 0.2.0.
const AYA_BUILD_VERSION: &str = "0.2.0";

pub(crate) fn ok(msg: &str) {
    eprintln!("  ok    {msg}");
}

pub(crate) fn act(msg: &str) {
    eprintln!("  ->    {msg}");
}

pub(crate) fn warn(msg: &str) {
    eprintln!("  warn  {msg}");
}

/// Runs every step; returns the environment cargo needs to build the eBPF crate.
pub fn run(ws: &Workspace) -> Result<BuildEnv> {
    let start = Instant::now();
    eprintln!("== setup: checking the toolchain (installs only what is missing)");
    match cmd::cargo_bin_dir() {
        Some(bin) if cmd::added_cargo_bin_to_path() => ok(&format!(
            "{} added to PATH (for this run's child processes)",
            bin.display()
        )),
        Some(bin) => ok(&format!("{} is on PATH", bin.display())),
        None => warn("neither CARGO_HOME nor HOME is set; relying on PATH alone"),
    }
    let mut apt = Apt::detect();
    lab_tools(&mut apt)?;
    bpf_linker(&mut apt)?;
    let env = toolchain::ensure(ws, &mut apt)?;
    lint_tools();
    aya_build_pin(ws)?;
    eprintln!("== setup: done in {}", cmd::human(start.elapsed()));
    Ok(env)
}

/// Setup when asked for, else what an earlier setup recorded.
pub fn run_or_load(ws: &Workspace, skip: bool) -> Result<BuildEnv> {
    if skip {
        eprintln!("== setup: skipped (--skip-setup)");
        return BuildEnv::load(ws);
    }
    run(ws)
}

/// The lab's programs. Missing ones are a warning, not an error: building needs none of them,
/// and without root (the only way to install them) the lab cannot run anyway.
fn lab_tools(apt: &mut Apt) -> Result<()> {
    if !apt.is_debian() {
        let missing: Vec<&str> = LAB_PROGRAMS
            .into_iter()
            .filter(|p| cmd::which(p).is_none())
            .collect();
        if missing.is_empty() {
            ok(&format!("lab programs: {}", LAB_PROGRAMS.join(" ")));
        } else {
            warn(&format!(
                "lab programs missing: {}; install them (iproute2, ethtool, util-linux, \
                 procps, prometheus) to run the tests and the demo",
                missing.join(" ")
            ));
        }
        return Ok(());
    }
    let missing = apt.missing(&LAB_PKGS)?;
    let optional = apt.missing(&OPTIONAL_PKGS)?;
    if missing.is_empty() {
        ok(&format!("lab packages: {}", LAB_PKGS.join(" ")));
    }
    if !apt.can_install() {
        if !missing.is_empty() {
            warn(&format!(
                "lab packages missing: {}; the tests and the demo need them: {}",
                missing.join(" "),
                apt::install_hint(&missing)
            ));
        }
        return Ok(());
    }
    if !missing.is_empty() {
        apt.install(&missing)?;
        ok(&format!("lab packages: installed {}", missing.join(" ")));
    }
    // Optional packages only ride along with a needed install or on a fresh machine; once they
    // are found absent from apt they are not retried, so a warm setup stays fast.
    if !optional.is_empty() && !missing.is_empty() {
        let available: Vec<String> = optional
            .into_iter()
            .filter(|p| apt.has_candidate(p))
            .collect();
        if let Err(e) = apt.install(&available) {
            warn(&format!("optional {}: {e:#}", available.join(" ")));
        }
    }
    Ok(())
}

/// bpf-linker links the eBPF object; its version must match what aya and rustc emit.
fn bpf_linker(apt: &mut Apt) -> Result<()> {
    let found = bpf_linker_version();
    match &found {
        Some(v) if v.starts_with(BPF_LINKER_SERIES) => {
            ok(&format!("bpf-linker {v}"));
            return Ok(());
        }
        Some(v) => act(&format!(
            "bpf-linker {v} found; installing {BPF_LINKER_VERSION} instead"
        )),
        None => act(&format!(
            "bpf-linker not found; installing {BPF_LINKER_VERSION}"
        )),
    }
    let prefix = llvm_prefix(apt)?;
    act(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against {prefix} (1-2 minutes)"
    ));
    cmd::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--locked",
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM,
            ]),
    )
    .context("building bpf-linker failed; the LLVM 22 development files are the usual culprit")?;
    match bpf_linker_version() {
        Some(v) if v.starts_with(BPF_LINKER_SERIES) => {
            ok(&format!("bpf-linker {v}"));
            Ok(())
        }
        other => bail!(
            "bpf-linker was installed but `bpf-linker --version` gives {other:?}; is {} on PATH?",
            cmd::cargo_bin_dir().unwrap_or_default().display()
        ),
    }
}

/// The version `bpf-linker --version` prints ("bpf-linker 0.13.0"), if it runs.
fn bpf_linker_version() -> Option<String> {
    let out = capture(Command::new("bpf-linker").arg("--version")).ok()?;
    if !out.status.success() {
        return None;
    }
    out.stdout.split_whitespace().nth(1).map(str::to_string)
}

/// An LLVM 22 with development files, installing Debian's when possible.
fn llvm_prefix(apt: &mut Apt) -> Result<String> {
    if let Some(p) = std::env::var_os("LLVM_PREFIX") {
        let p = p.to_string_lossy().into_owned();
        if !Path::new(&p).join("bin/llvm-config").is_file() {
            bail!("LLVM_PREFIX={p} has no bin/llvm-config; point it at an LLVM 22 installation");
        }
        ok(&format!("LLVM from LLVM_PREFIX={p}"));
        return Ok(p);
    }
    if apt.is_debian() {
        let missing = apt.missing(&BUILD_PKGS)?;
        if missing.is_empty() {
            ok(&format!(
                "bpf-linker build packages: {}",
                BUILD_PKGS.join(" ")
            ));
        } else if apt.can_install() {
            apt.install(&missing)?;
        } else {
            bail!(
                "building bpf-linker needs LLVM 22's development files: {}, then run \
                 `cargo xtask setup` again",
                apt::install_hint(&missing)
            );
        }
    }
    if Path::new(DEBIAN_LLVM_PREFIX)
        .join("bin/llvm-config")
        .is_file()
    {
        return Ok(DEBIAN_LLVM_PREFIX.into());
    }
    bail!(
        "building bpf-linker needs LLVM 22 with its development files, not found in \
         {DEBIAN_LLVM_PREFIX}. Install it (Debian 12: apt-get install {}; elsewhere see \
         https://apt.llvm.org or your distribution), set LLVM_PREFIX to its prefix if it is \
         elsewhere, and run `cargo xtask setup` again",
        BUILD_PKGS.join(" ")
    )
}

/// `cargo xtask test` runs clippy and rustfmt from the toolchain that builds the workspace.
/// Missing ones are added through rustup; failing that only `--no-lint` works, so a warning.
fn lint_tools() {
    let have = |sub: &str| {
        capture(Command::new("cargo").args([sub, "--version"])).is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = [("clippy", "clippy"), ("fmt", "rustfmt")]
        .into_iter()
        .filter(|(sub, _)| !have(sub))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        ok("lint tools: clippy, rustfmt");
        return;
    }
    act(&format!("adding {} (rustup component)", missing.join(", ")));
    // No --toolchain: rustup adds them to the active one, the one cargo runs (RUSTUP_TOOLCHAIN).
    let r = cmd::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    );
    if let Err(e) = r {
        warn(&format!(
            "{e:#}; `cargo xtask test` needs {} unless run with --no-lint",
            missing.join(" and ")
        ));
    }
}

/// Cargo.toml asks for `=0.2.0`, but a lock file edited by hand or by an older checkout could
/// still say otherwise.
fn aya_build_pin(ws: &Workspace) -> Result<()> {
    let lock = ws.root.join("Cargo.lock");
    let text = match std::fs::read_to_string(&lock) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ok("no Cargo.lock yet; Cargo.toml pins aya-build =0.2.0");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", lock.display())),
    };
    match locked_version(&text, "aya-build") {
        Some(v) if v == AYA_BUILD_VERSION => {
            ok(&format!("Cargo.lock pins aya-build {v}"));
            Ok(())
        }
        found => {
            act(&format!(
                "Cargo.lock has aya-build {found:?}; pinning {AYA_BUILD_VERSION} (0.2.1 needs rustc 1.98)"
            ));
            cmd::run(&mut ws.cargo([
                "update",
                "--package",
                "aya-build",
                "--precise",
                AYA_BUILD_VERSION,
            ]))
            .map(drop)
        }
    }
}

/// The version of `package` in a Cargo.lock (the first, should there be several).
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    lines.find(|l| l.trim() == name_line)?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?;
    Some(version.strip_suffix('"')?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_locked_version() {
        let lock = "[[package]]\nname = \"aya\"\nversion = \"0.14.0\"\n\n\
                    [[package]]\nname = \"aya-build\"\nversion = \"0.2.0\"\nsource = \"x\"\n";
        assert_eq!(locked_version(lock, "aya-build").as_deref(), Some("0.2.0"));
        assert_eq!(locked_version(lock, "aya").as_deref(), Some("0.14.0"));
        assert_eq!(locked_version(lock, "nope"), None);
    }
}
