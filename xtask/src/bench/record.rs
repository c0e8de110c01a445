//! Recording figures as JSON under `target/bench/`, for comparing runs later. Each file holds an
//! object keyed by section; a run replaces the sections it ran and keeps the others, and every
//! section carries when, where and on which commit it was measured, since sections in one file
//! may come from different runs.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::cmd::{Workspace, capture};

/// Writes `figures` as section `section` of `target/bench/<file>`; returns the file's path.
pub fn save(ws: &Workspace, file: &str, section: &str, figures: Value) -> Result<PathBuf> {
    let dir = ws.target.join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file);
    let mut all = match fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<Map<String, Value>>(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "  warn  {} is not a JSON object ({e}); starting it afresh",
                    path.display()
                );
                Map::new()
            }
        },
        Err(_) => Map::new(),
    };
    all.insert(
        section.to_string(),
        json!({ "run": run_info(ws), "figures": figures }),
    );
    let text = serde_json::to_string_pretty(&all)? + "\n";
    // Write then rename: an interrupted run leaves the previous figures, not half a file.
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What makes figures comparable or not: the commit, the kernel, the CPUs.
fn run_info(ws: &Workspace) -> Value {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let git = capture(
        Command::new("git")
            .current_dir(&ws.root)
            .args(["describe", "--always", "--dirty"]),
    )
    .ok()
    .filter(|o| o.status.success())
    .map(|o| o.stdout.trim().to_string());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "unix_time": unix_time,
        "git": git,
        "kernel": kernel,
        "cpus": cpus,
        "cpu_model": cpu_model(),
    })
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}
