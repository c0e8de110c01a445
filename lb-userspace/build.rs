//! Builds the XDP programs in `lb-ebpf` for bpfel-unknown-none and leaves the objects in OUT_DIR,
//! where `src/dataplane/objects.rs` embeds them. Needs the toolchain `cargo xtask setup` installs.
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // The toolchain that can build `core` for BPF: rustup's nightly by default, or the Debian
    // rustc that `cargo xtask setup` links when nightly has no rust-src.
    println!("cargo:rerun-if-env-changed=SHEAVE_BPF_TOOLCHAIN");
    // aya-build decides on `-Z build-std` from it (set by setup for the Debian toolchain).
    println!("cargo:rerun-if-env-changed=RUSTC_BOOTSTRAP");
    let toolchain = std::env::var("SHEAVE_BPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../lb-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "lb-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}
