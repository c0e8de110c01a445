//! The JSON summary `sheave-lab-client` prints; shared by the binary (writer) and tests (reader).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One run of `sheave-lab-client`: `requested` connections, of which `attempted` were started
/// before the deadline; each attempted one either succeeded (`ok`, counted per backend name in
/// `by_backend`) or failed (`failed`, counted per error kind in `errors`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReport {
    /// The target as given, e.g. `198.18.100.1:80` or `[2001:db8:100::1]:80`.
    pub target: String,
    pub requested: usize,
    pub attempted: usize,
    pub ok: usize,
    pub failed: usize,
    /// Connections never started because the overall deadline passed.
    pub not_attempted: usize,
    /// Successful responses per backend name (first line of the body).
    pub by_backend: BTreeMap<String, usize>,
    /// Failures per kind, e.g. `connect_timeout`, `connect_refused`, `read_reset`, `status_503`.
    pub errors: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
}

impl ClientReport {
    /// Every requested connection was made and answered 200.
    pub fn all_ok(&self) -> bool {
        self.ok == self.requested && self.failed == 0 && self.not_attempted == 0
    }

    /// Successful responses from `backend`.
    pub fn count(&self, backend: &str) -> usize {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }
}
