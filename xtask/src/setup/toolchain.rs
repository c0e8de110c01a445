//! The Rust toolchain that builds the eBPF crate. lb-userspace's build script runs
//! `rustup run $SHEAVE_BPF_TOOLCHAIN cargo build -Z build-std=core --target bpfel-unknown-none`
//! (through aya-build), so that toolchain needs the `rust-src` component and `-Z` flags.
//!
//! In order of preference:
//! 1. `SHEAVE_BPF_TOOLCHAIN` from the environment: the developer's choice, only checked.
//! 2. rustup's `nightly` with rust-src (installed if missing): the usual aya way, nothing to
//!    export since nightly is the build script's default.
//! 3. Debian's `rustc-web` + `rust-web-src` (rustc 1.96, LLVM 22) linked into rustup as
//!    `sheave-bpf`, for machines that cannot reach rustup's dist server. It is a stable compiler,
//!    so builds need `RUSTC_BOOTSTRAP=1` (aya-build then passes `-Z build-std`).
//!
//! The choice is recorded in `<target>/sheave-bpf-toolchain` as the environment later cargo
//! runs need; `cargo xtask test`/`demo` apply it, developers export it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::apt::{self, Apt};
use super::{act, ok, warn};
use crate::cmd::{self, Workspace, capture};
use crate::signals;

pub const TOOLCHAIN_ENV: &str = "SHEAVE_BPF_TOOLCHAIN";
/// What lb-userspace's build script uses when `SHEAVE_BPF_TOOLCHAIN` is unset.
const NIGHTLY: &str = "nightly";
/// The rustup name under which the Debian compiler is linked.
const DEBIAN: &str = "sheave-bpf";
/// Where the Debian packages put rustc, and so its sysroot.
const DEBIAN_SYSROOT: &str = "/usr";
const DEBIAN_PKGS: [&str; 2] = ["rustc-web", "rust-web-src"];
/// File in the target directory recording the environment the chosen toolchain needs.
const RECORD: &str = "sheave-bpf-toolchain";

/// Environment variables cargo needs so that the eBPF crate builds with the chosen toolchain.
/// Empty for rustup's nightly, the build script's default: setting `SHEAVE_BPF_TOOLCHAIN=nightly`
/// explicitly would make cargo rerun the build script whenever a developer builds without it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    vars: Vec<(String, String)>,
}

impl BuildEnv {
    fn debian() -> BuildEnv {
        BuildEnv {
            vars: vec![
                (TOOLCHAIN_ENV.into(), DEBIAN.into()),
                ("RUSTC_BOOTSTRAP".into(), "1".into()),
            ],
        }
    }

    /// Sets the variables on `cmd`, except those the user set: their environment wins.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in &self.vars {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
    }

    /// `export A=1 B=2`, or `None` when nothing needs exporting.
    pub fn export_line(&self) -> Option<String> {
        if self.vars.is_empty() {
            return None;
        }
        let kv: Vec<String> = self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Some(format!("export {}", kv.join(" ")))
    }

    /// What a previous setup recorded (empty if none): for `--skip-setup`. Nothing applies when
    /// the user chose a toolchain through the environment.
    pub fn load(ws: &Workspace) -> Result<BuildEnv> {
        if std::env::var_os(TOOLCHAIN_ENV).is_some() {
            return Ok(BuildEnv::default());
        }
        let path = record_path(ws);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BuildEnv::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(parse_record(&text))
    }

    fn save(&self, ws: &Workspace) -> Result<()> {
        let path = record_path(ws);
        let mut text = String::from(
            "# Written by `cargo xtask setup`: the environment cargo needs to build the eBPF \
             crate.\n# Empty: rustup's nightly, the default.\n",
        );
        for (k, v) in &self.vars {
            text.push_str(&format!("{k}={v}\n"));
        }
        fs::create_dir_all(&ws.target)
            .with_context(|| format!("creating {}", ws.target.display()))?;
        // Write then rename, so that a concurrent reader never sees half a file.
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

fn record_path(ws: &Workspace) -> PathBuf {
    ws.target.join(RECORD)
}

fn parse_record(text: &str) -> BuildEnv {
    let vars = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    BuildEnv { vars }
}

/// What `rustup run <toolchain>` finds.
#[derive(Debug)]
enum Probe {
    /// Usable: its `rustc --version` line.
    Ready(String),
    /// Installed, but its sysroot has no library sources.
    NoSource {
        version: String,
    },
    NotInstalled,
    /// rustup could not run it (the message says why).
    Broken(String),
}

/// Checks `toolchain` without installing anything: rustc runs, and its sysroot holds the
/// library sources `-Z build-std` compiles. Works alike for rustup's own and linked toolchains.
fn probe(toolchain: &str) -> Result<Probe> {
    let run = |args: &[&str]| {
        let mut c = Command::new("rustup");
        // rustup >= 1.28 could otherwise install a missing toolchain on the spot; and its
        // backtraces (RUST_BACKTRACE is often set) only clutter the messages we show.
        c.env("RUSTUP_AUTO_INSTALL", "0")
            .env("RUST_BACKTRACE", "0")
            .args(["run", toolchain, "rustc"])
            .args(args);
        capture(&mut c)
    };
    let sysroot = run(&["--print", "sysroot"])?;
    if !sysroot.status.success() {
        let err = sysroot.stderr.trim();
        // "error: toolchain 'nightly-x86_64-unknown-linux-gnu' is not installed"
        if err.contains("not installed") {
            return Ok(Probe::NotInstalled);
        }
        return Ok(Probe::Broken(err.to_string()));
    }
    let version = run(&["--version"])?;
    let version = version.stdout.trim().to_string();
    let sysroot = PathBuf::from(sysroot.stdout.trim());
    if has_library_source(&sysroot) {
        Ok(Probe::Ready(version))
    } else {
        Ok(Probe::NoSource { version })
    }
}

fn has_library_source(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .is_file()
}

/// Makes sure a toolchain can build the eBPF crate, records it, and returns the environment
/// cargo needs for it.
pub fn ensure(ws: &Workspace, apt: &mut Apt) -> Result<BuildEnv> {
    if cmd::which("rustup").is_none() {
        bail!(
            "rustup is not on PATH; the eBPF crate is built through `rustup run`. Install rustup \
             (https://rustup.rs), then run `cargo xtask setup` again"
        );
    }
    if let Some(chosen) = std::env::var_os(TOOLCHAIN_ENV) {
        let chosen = chosen.to_string_lossy().into_owned();
        check_chosen(&chosen)?;
        return Ok(BuildEnv::default());
    }

    if let Probe::Ready(v) = probe(NIGHTLY)? {
        ok(&format!("eBPF toolchain: {NIGHTLY} with rust-src ({v})"));
        return record(ws, BuildEnv::default());
    }
    // Set up by an earlier run because nightly was out of reach: checking it first keeps a
    // machine without access to rustup's servers from retrying (and timing out) every time.
    if let Probe::Ready(v) = probe(DEBIAN)? {
        ok(&format!(
            "eBPF toolchain: {DEBIAN} (Debian's rustc, {v}); {NIGHTLY} with rust-src is not available"
        ));
        return record(ws, BuildEnv::debian());
    }

    match install_nightly() {
        Ok(v) => {
            ok(&format!("eBPF toolchain: {NIGHTLY} with rust-src ({v})"));
            return record(ws, BuildEnv::default());
        }
        // Ctrl-C during the download is not a reason to install Debian's compiler.
        Err(e) if e.is::<signals::Interrupted>() => return Err(e),
        Err(e) => warn(&format!(
            "cannot get {NIGHTLY} with rust-src from rustup: {e:#}\n      \
             falling back to Debian's rustc ({})",
            DEBIAN_PKGS.join(" + ")
        )),
    }
    let env = debian_fallback(apt)?;
    record(ws, env)
}

fn record(ws: &Workspace, env: BuildEnv) -> Result<BuildEnv> {
    env.save(ws)?;
    if let Some(line) = env.export_line() {
        ok(&format!(
            "recorded in {}: `cargo xtask test/demo` use it; to run cargo by hand, first\n      {line}",
            record_path(ws).display()
        ));
    }
    Ok(env)
}

/// The developer named a toolchain: check it, add rust-src to a rustup one, never replace it.
fn check_chosen(chosen: &str) -> Result<()> {
    let hint = format!("or unset {TOOLCHAIN_ENV} to let setup pick one");
    match probe(chosen)? {
        Probe::Ready(v) => {
            ok(&format!(
                "eBPF toolchain: {chosen} with rust-src ({v}), from {TOOLCHAIN_ENV}"
            ));
            Ok(())
        }
        Probe::NoSource { .. } => {
            act(&format!(
                "adding rust-src to {chosen} (from {TOOLCHAIN_ENV})"
            ));
            cmd::run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                chosen,
            ]))
            .with_context(|| format!("{TOOLCHAIN_ENV}={chosen} has no rust-src; add it, {hint}"))?;
            Ok(())
        }
        Probe::NotInstalled => bail!(
            "{TOOLCHAIN_ENV}={chosen} is not an installed toolchain; \
             `rustup toolchain install {chosen} --component rust-src`, {hint}"
        ),
        Probe::Broken(e) => bail!("{TOOLCHAIN_ENV}={chosen} does not run: {e}; {hint}"),
    }
}

/// Installs nightly (minimal profile) with rust-src, or adds rust-src to an installed nightly.
fn install_nightly() -> Result<String> {
    let mut c = Command::new("rustup");
    match probe(NIGHTLY)? {
        Probe::NotInstalled => {
            act(&format!("installing rustup's {NIGHTLY} with rust-src"));
            c.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"])
                .args(["--component", "rust-src"]);
        }
        Probe::NoSource { version, .. } => {
            act(&format!("adding rust-src to {NIGHTLY} ({version})"));
            c.args(["component", "add", "rust-src", "--toolchain", NIGHTLY]);
        }
        Probe::Ready(v) => return Ok(v),
        Probe::Broken(e) => bail!("{NIGHTLY} is installed but does not run: {e}"),
    }
    cmd::run(&mut c)?;
    match probe(NIGHTLY)? {
        Probe::Ready(v) => Ok(v),
        other => bail!("rustup succeeded but {NIGHTLY} is still not usable: {other:?}"),
    }
}

/// Debian's rustc-web + rust-web-src, linked into rustup as `sheave-bpf`.
fn debian_fallback(apt: &mut Apt) -> Result<BuildEnv> {
    let manual = format!(
        "either get rustup's nightly (`rustup toolchain install {NIGHTLY} --component rust-src`) \
         or, on Debian 12, `{}` then `rustup toolchain link {DEBIAN} {DEBIAN_SYSROOT}`, and run \
         `cargo xtask setup` again",
        apt::install_hint(&DEBIAN_PKGS.map(String::from))
    );
    if !apt.can_install() {
        bail!(
            "no usable eBPF toolchain, and {}: {manual}",
            if apt.is_debian() {
                "installing Debian's rustc needs root"
            } else {
                "this is not a Debian system"
            }
        );
    }
    let missing = apt.missing(&DEBIAN_PKGS)?;
    if !missing.is_empty() {
        apt.update();
        if let Some(p) = missing.iter().find(|p| !apt.has_candidate(p)) {
            bail!("apt has no package {p} (it is in Debian 12's security archive): {manual}");
        }
        // rustc-web conflicts with Debian's own `rustc` package, which apt then removes; rustup's
        // compilers in ~/.cargo are not packages and are not touched.
        apt.install(&missing)?;
    }
    let sysroot = Path::new(DEBIAN_SYSROOT);
    if !sysroot.join("bin/rustc").is_file() || !has_library_source(sysroot) {
        bail!(
            "{} are installed but {DEBIAN_SYSROOT} lacks bin/rustc or lib/rustlib/src/rust/library: {manual}",
            DEBIAN_PKGS.join(" + ")
        );
    }
    act(&format!("linking {DEBIAN_SYSROOT} into rustup as {DEBIAN}"));
    cmd::run(Command::new("rustup").args(["toolchain", "link", DEBIAN, DEBIAN_SYSROOT]))?;
    match probe(DEBIAN)? {
        Probe::Ready(v) => {
            ok(&format!(
                "eBPF toolchain: {DEBIAN} (Debian's rustc, {v}); builds need RUSTC_BOOTSTRAP=1"
            ));
            Ok(BuildEnv::debian())
        }
        other => bail!("{DEBIAN} linked but not usable: {other:?}; {manual}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let env = BuildEnv::debian();
        let mut text = String::from("# comment\n\n");
        for (k, v) in &env.vars {
            text.push_str(&format!("{k}={v}\n"));
        }
        assert_eq!(parse_record(&text), env);
        assert_eq!(
            env.export_line().unwrap(),
            "export SHEAVE_BPF_TOOLCHAIN=sheave-bpf RUSTC_BOOTSTRAP=1"
        );
        assert_eq!(parse_record("# only comments\n"), BuildEnv::default());
        assert_eq!(BuildEnv::default().export_line(), None);
    }
}
