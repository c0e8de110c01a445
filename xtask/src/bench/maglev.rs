//! The `maglev` section: runs lb-userspace's `bench-control` example (built in release mode by
//! [`super::build`]), which times the daemon's own Maglev code and prints its tables, and takes
//! back its raw figures. An example rather than code here: `cargo xtask` runs a dev build, which
//! would time unoptimised code, and linking lb-userspace into xtask would make every `cargo
//! xtask` command build the eBPF programs first.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, Workspace};

pub const EXAMPLE: &str = "bench-control";

pub fn run(ws: &Workspace, runs: u32) -> Result<Value> {
    let exe = super::bin_dir(ws).join("examples").join(EXAMPLE);
    if !exe.is_file() {
        bail!(
            "{} is missing; run without --no-build to build it",
            exe.display()
        );
    }
    let out = ws.target.join("bench").join("maglev.partial.json");
    fs::create_dir_all(out.parent().expect("has a parent"))?;
    let mut c = Command::new(&exe);
    c.arg("maglev")
        .args(["--runs", &runs.to_string()])
        .arg("--json")
        .arg(&out);
    cmd::run(&mut c)?;
    let text = fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let _ = fs::remove_file(&out);
    serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))
}
