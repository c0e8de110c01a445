//! The `packet` section: ns per packet through the XDP program, by BPF_PROG_TEST_RUN. Runs
//! lb-userspace's `bench-packet` example (built in release mode by [`super::build`]): it loads
//! the real program through the daemon's own code in a private network namespace, times each case
//! against an empty XDP program and prints the table; this takes back its raw figures and says
//! how the medians compare with the budgets. An example rather than code here for the
//! reasons given in `maglev.rs`; it prints the table itself so that a run by hand shows the same.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, Workspace};

pub const EXAMPLE: &str = "bench-packet";

pub fn run(ws: &Workspace, calls: u32, trials: u32) -> Result<Value> {
    let exe = super::bin_dir(ws).join("examples").join(EXAMPLE);
    if !exe.is_file() {
        bail!(
            "{} is missing; run without --no-build to build it",
            exe.display()
        );
    }
    let out = ws.target.join("bench").join("packet.partial.json");
    fs::create_dir_all(out.parent().expect("has a parent"))?;
    let mut c = Command::new(&exe);
    c.args(["--calls", &calls.to_string()])
        .args(["--trials", &trials.to_string()])
        .arg("--json")
        .arg(&out);
    cmd::run(&mut c)?;
    let text = fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let _ = fs::remove_file(&out);
    let figures: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))?;
    summarise(&figures)?;
    Ok(figures)
}

/// One line on the budgets, and a warning for each case whose checks failed: its figure is
/// recorded but does not measure what its name says. Timings are never a failure.
fn summarise(figures: &Value) -> Result<()> {
    let cases = figures["cases"]
        .as_array()
        .context("bench-packet wrote no cases")?;
    let budgeted: Vec<&Value> = cases
        .iter()
        .filter(|c| c["within_target"].is_boolean())
        .collect();
    let over: Vec<&str> = budgeted
        .iter()
        .filter(|c| c["within_target"] == false)
        .filter_map(|c| c["name"].as_str())
        .collect();
    eprintln!(
        "  {} of {} budgeted medians within budget{}{}",
        budgeted.len() - over.len(),
        budgeted.len(),
        if over.is_empty() { "" } else { "; over: " },
        over.join(", ")
    );
    // Where the kernel's own map work already exceeds a budget, no change of ours can meet it.
    for c in cases {
        let (Some(floor), Some(budget)) = (
            c["flow_table_floor"]["net_ns_median"].as_f64(),
            c["target"]["ns"].as_f64(),
        ) else {
            continue;
        };
        if floor > budget {
            eprintln!(
                "  note  {}: the flow table's own work alone (sheave_flow_floor: its lookup, and insert on \
                 a miss) takes {floor:.0} ns, over the {budget:.0} ns budget by itself",
                c["name"].as_str().unwrap_or("?"),
            );
        }
    }
    for c in cases
        .iter()
        .filter(|c| c["checks_ok"] != true || c["flow_table_floor"]["checks_ok"] == false)
    {
        eprintln!(
            "  warn  {}: checks failed: {} {}",
            c["name"].as_str().unwrap_or("?"),
            c["problems"],
            c["flow_table_floor"]["problems"]
        );
    }
    Ok(())
}
