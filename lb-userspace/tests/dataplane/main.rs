//! The XDP programs under BPF_PROG_TEST_RUN: packet fixtures (input → expected action and output
//! bytes), stateful sequences, and hash parity between the kernel and the userspace simulator.
//!
//! Runs as its own harness so the process can enter a private network namespace before any test
//! thread exists; every thread then shares it, and it disappears when the process exits.
#[cfg(feature = "bench")]
mod cases_bench;
mod cases_capacity;
mod cases_decap;
mod cases_flood;
mod cases_forward;
mod cases_handshakes;
mod cases_health;
mod cases_icmp;
mod cases_pass;
mod cases_state;
mod cases_strict;
mod cases_swap;
mod fixture;
mod fuzz;
mod parity;

use lb_userspace::testkit::netns;
use libtest_mimic::{Arguments, Trial};

/// The fixtures' configurations, as files (`configs/*.toml`), by file name.
pub mod configs {
    use anyhow::Result;
    use lb_userspace::testkit::Lb;

    /// The VIPs and backends most fixtures run against.
    pub const FIXTURE: &str = "fixture.toml";
    /// A VIP with a new-flow limit (the flood guard).
    pub const FLOOD: &str = "flood.toml";
    /// Weighted VIPs at the production ring size (hash parity).
    pub const PARITY: &str = "parity.toml";
    /// A VIP with 64 backends at the largest ring size, and a small one (ring swaps).
    pub const RING_SWAP: &str = "ring-swap.toml";

    const FILES: [(&str, &str); 4] = [
        (FIXTURE, include_str!("configs/fixture.toml")),
        (FLOOD, include_str!("configs/flood.toml")),
        (PARITY, include_str!("configs/parity.toml")),
        (RING_SWAP, include_str!("configs/ring-swap.toml")),
    ];

    /// The text of `configs/<name>`.
    pub fn text(name: &str) -> &'static str {
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no configs/{name}"))
            .1
    }

    /// The production program loaded with `configs/<name>`.
    pub fn load(fx0: u32, name: &str) -> Result<Lb> {
        Lb::with_config(fx0, text(name))
    }
}

/// A trial whose body returns `anyhow::Result`.
pub fn trial(name: &str, f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> Trial {
    Trial::test(name, move || f().map_err(|e| format!("{e:#}").into()))
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let ns = match netns::enter() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("cannot set up the test network namespace: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let fx0 = ns.fx0;
    let mut trials = Vec::new();
    trials.extend(cases_forward::trials(fx0));
    trials.extend(cases_pass::trials(fx0));
    trials.extend(cases_strict::trials(fx0));
    trials.extend(cases_capacity::trials(fx0));
    trials.extend(cases_icmp::trials(fx0));
    trials.extend(cases_flood::trials(fx0));
    trials.extend(cases_state::trials(fx0));
    trials.extend(cases_handshakes::trials(fx0));
    trials.extend(cases_health::trials(fx0));
    #[cfg(feature = "bench")]
    trials.extend(cases_bench::trials(fx0));
    trials.extend(cases_swap::trials(fx0));
    trials.extend(cases_decap::trials());
    trials.extend(parity::trials(fx0));
    trials.extend(fuzz::trials(fx0));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(ns);
    conclusion.exit_code()
}
