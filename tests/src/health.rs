//! Health checks, failover, connection-preserving drain and slow-start, seen from outside: the
//! `sheave` CLI and `/metrics` of a `sheaved` running in a [`Lab`](crate::lab::Lab), real
//! traffic from the client (a steady stream of short connections with a per-connection record,
//! and long-lived echo streams that notice a single lost or misrouted packet), and the
//! scenarios that the lab tests (`tests/lab_health.rs`) assert on and `cargo xtask bench
//! health` measures, so both run exactly the same thing.
pub mod cli;
pub mod drain;
pub mod failover;
pub mod load;
pub mod metrics;
pub mod toml;
pub mod translog;

pub use cli::{BackendStatus, Sheave, Vip};

use crate::traffic::echo::EchoOpts;

/// Echo streams as the health scenarios open them: running `duration` from their opening (the
/// drain measures when the last one ended), and broken by an echo 3 s late, so a failover that
/// loses packets shows before the scenario's own deadlines.
pub fn echo_opts(duration: std::time::Duration) -> EchoOpts {
    EchoOpts {
        duration,
        reply_timeout: std::time::Duration::from_secs(3),
        ..EchoOpts::default()
    }
}

/// A duration as the CLI and the configuration take it: `60s`, or `1500ms` when not whole.
pub fn duration_arg(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
