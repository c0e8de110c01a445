//! Builds the XDP programs in `lb-ebpf` for bpfel-unknown-none and leaves the objects in OUT_DIR,
//! where `src/dataplane/objects.rs` embeds them. Needs the toolchain `cargo xtask setup` installs.
//!
//! With the `bench` feature, it builds `lb-ebpf` a second time with its own `bench` feature (the
//! bench-only entry points) into OUT_DIR/bench. The objects in OUT_DIR itself, the ones sheaved
//! embeds, are always built without it.
use std::{env, path::PathBuf};

use anyhow::{Context as _, Result};
use aya_build::{Package, Toolchain};

fn main() -> Result<()> {
    // The toolchain that can build `core` for BPF: rustup's nightly by default, or the Debian
    // rustc that `cargo xtask setup` links when nightly has no rust-src.
    println!("cargo:rerun-if-env-changed=SHEAVE_BPF_TOOLCHAIN");
    // aya-build decides on `-Z build-std` from it (set by setup for the Debian toolchain).
    println!("cargo:rerun-if-env-changed=RUSTC_BOOTSTRAP");
    let toolchain = env::var("SHEAVE_BPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    build(&toolchain, &[])?;
    if env::var_os("CARGO_FEATURE_BENCH").is_some() {
        let bench_dir = out_dir.join("bench");
        std::fs::create_dir_all(&bench_dir)?;
        // aya-build keeps its cargo target directory under OUT_DIR/aya-build. Pointing the bench
        // build's at the same one means only lb-ebpf itself is compiled again (with the feature):
        // `core` and the other dependencies are reused.
        let shared = bench_dir.join("aya-build");
        if shared.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(out_dir.join("aya-build"), &shared)
                .with_context(|| format!("linking {}", shared.display()))?;
        }
        // aya-build copies the binaries to $OUT_DIR/<bin>. Safe: a build script is one thread
        // here (aya-build joins the threads it starts before it returns).
        unsafe { env::set_var("OUT_DIR", &bench_dir) };
        let built = build(&toolchain, &["bench"]);
        unsafe { env::set_var("OUT_DIR", &out_dir) };
        built?;
    }
    Ok(())
}

fn build(toolchain: &str, features: &[&str]) -> Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../lb-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "lb-ebpf",
            root_dir: root,
            features,
            ..Default::default()
        }],
        Toolchain::Custom(toolchain),
    )
}
