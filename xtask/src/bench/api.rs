//! The `api` section: the time from an API call to the map update. `sheaved` answers a change
//! only after it has rebuilt the ring and written it to the maps (and persisted its state), so
//! the API round trip is that time, as an operator or an automation sees it.
//!
//! Runs in the lab the end-to-end tests use (`sheave_tests::deploy`, 3 backends, M = 65537),
//! with the release build of `sheaved`. Every call is timed twice over, through a bare HTTP
//! request on the API socket and through the `sheave` CLI as an operator runs it; the difference
//! is the CLI's start-up. Teardown follows the demo: one place, the same order on success,
//! failure and Ctrl-C.

mod calls;

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::{Value, json};
use sheave_tests::deploy::Deployment;
use sheave_tests::lab::{Lab, VIP_PORT, VIP4};

use super::stats;
use crate::signals;
use calls::{Call, Client, Driver};

/// Backends in the lab: the first has its weight toggled, the last is removed and re-added.
const BACKENDS: usize = 3;

pub fn run(calls: usize) -> Result<Value> {
    crate::session::on_deployment(
        "api benchmark",
        BACKENDS,
        |_| None,
        |lab, d| {
            eprintln!(
                "  sheaved ready on {}; {calls} timed calls per cell",
                lab.lb().name
            );
            measure(lab, d, calls)
        },
    )
}

fn measure(lab: &Lab, d: &Deployment, calls: usize) -> Result<Value> {
    let backends = lab.backends();
    let mut drv = Driver::connect(
        lab.dir(),
        d.sheaved().pid(),
        backends[0].v4,
        backends[BACKENDS - 1].v4,
    )?;
    match drv.map_id() {
        Some(id) => eprintln!("  checking each change in the VIPS map (id {id}) with bpftool"),
        None => eprintln!("  warn  bpftool not found: map updates are not checked directly"),
    }
    // One untimed round per client first: page cache, the CLI's first exec, lazy allocations.
    for round in 0..=calls {
        let clients = if round % 2 == 0 {
            [Client::Http, Client::Cli]
        } else {
            [Client::Cli, Client::Http]
        };
        for client in clients {
            for call in Call::ROUND {
                signals::check()?;
                drv.step(call, client, round > 0)?;
            }
        }
    }
    let ring_size = drv.ring_size();
    println!("{}", table(&drv, ring_size));
    let mut cells = serde_json::Map::new();
    for call in Call::ALL {
        let by_client: serde_json::Map<String, Value> = Client::ALL
            .iter()
            .map(|&c| (c.name().to_string(), drv.samples(call, c).to_json()))
            .collect();
        cells.insert(call.name().to_string(), Value::Object(by_client));
    }
    Ok(json!({
        "vip": format!("tcp {VIP4}:{VIP_PORT}"),
        "ring_size": ring_size,
        "backends": BACKENDS,
        "calls_per_cell": calls,
        "sheaved_profile": "release",
        "map_changes_checked": drv.map_checks(),
        "calls": cells,
    }))
}

fn table(drv: &Driver, ring_size: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nAPI call -> map update: VIP tcp {VIP4}:{VIP_PORT}, M = {ring_size}, {BACKENDS} \
         backends, release sheaved"
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>5} | {:>27} | {:>27} | {:>10}",
        "", "", "raw HTTP request, ms", "sheave CLI process, ms", "CLI - HTTP"
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>5} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>10}",
        "call", "n", "median", "p90", "max", "median", "p90", "max", "median"
    );
    for call in Call::ALL {
        let h = drv.samples(call, Client::Http);
        let c = drv.samples(call, Client::Cli);
        let _ = writeln!(
            s,
            "  {:<26} {:>5} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>10}",
            call.label(),
            h.len(),
            stats::ms(h.median()),
            stats::ms(h.pct(90.0)),
            stats::ms(h.max()),
            stats::ms(c.median()),
            stats::ms(c.pct(90.0)),
            stats::ms(c.max()),
            stats::ms_diff(c.median(), h.median()),
        );
    }
    let _ = writeln!(
        s,
        "  a change's time is the whole round trip: ring built, {ring_size} slots written, VIP \
         flipped to\n  them, state persisted, answer sent. Every answer, and the `vip show` after \
         it, showed the change."
    );
    let checked = drv.map_checks();
    if checked > 0 {
        let _ = writeln!(
            s,
            "  In the VIPS map, the VIP pointed at the newly written ring half when each of the \
             {checked} changes\n  (warm-up included) was answered (read with bpftool)."
        );
    }
    s
}
