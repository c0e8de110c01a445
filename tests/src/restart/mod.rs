//! Hitless restarts, upgrades and configuration reloads of `sheaved`, seen from outside: real
//! traffic from the lab's client while the daemon is killed, restarted or reloaded, and the
//! evidence the lab tests (`tests/lab_restart.rs`) assert on. The data plane is meant to outlive
//! the daemon (maps and XDP link pinned in bpffs), so the traffic here is built to notice the
//! smallest interruption: long-lived echo streams whose every line crosses the load balancer,
//! and a steady churn of new short connections with a timestamp each, so a test can ask what
//! happened while the daemon was down.
pub mod churn;
pub mod config;
pub mod daemon;
pub mod layout;
pub mod traffic;

pub use daemon::{Control, ReconcileLog};
pub use traffic::{Traffic, TrafficReport};
