//! Sheave's userspace: the `sheaved` daemon and the `sheave` CLI share this library.
//!
//! A change flows config → [`state`] (desired state: VIPs, backend ids, ring regions) →
//! [`reconcile`] (Maglev rings via [`maglev`], written into the maps of [`dataplane`]).
//! [`simulate`] answers "which backend gets this flow" with the same hash and rings as the kernel.
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod health;
pub mod maglev;
pub mod maps;
pub mod metrics;
pub mod netinfo;
pub mod outlier;
pub mod persist;
pub mod reconcile;
pub mod simulate;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;
