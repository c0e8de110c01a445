//! The HTTP/JSON API on a unix socket: the only way running state changes. The CLI, `config
//! apply`, reloads and the health checkers all end in the control task's one change path
//! (validate on a copy → write the maps → save → run it), so there is one code path to test.
//!
//! Routes (all JSON; errors are `{"error": "..."}` with a 4xx/5xx status):
//!
//! | method | path | body / answer |
//! | --- | --- | --- |
//! | GET | /v1/vips | [`types::VipView`] list |
//! | POST | /v1/vips | [`types::AddVip`] → VipView |
//! | GET, DELETE | /v1/vips/{proto}/{addr}/{port} | VipView |
//! | POST | /v1/vips/{proto}/{addr}/{port}/backends | [`types::AddBackend`] → VipView |
//! | DELETE | /v1/vips/{proto}/{addr}/{port}/backends/{addr} | VipView |
//! | PATCH | /v1/vips/{proto}/{addr}/{port}/backends/{addr} | [`types::UpdateBackend`] → VipView |
//! | PUT | /v1/backends/{addr} | [`types::SetBackend`] (disable/enable in every VIP) → VipView list |
//! | GET | /v1/status | [`types::StatusView`] |
//! | GET | /v1/stats | [`types::StatsView`] |
//! | POST | /v1/explain | [`types::ExplainRequest`] → [`types::ExplainView`] |
//! | POST | /v1/config/diff, /v1/config/apply | [`types::ConfigRequest`] → [`types::DiffView`] |
//! | POST | /v1/config/reload | (none: re-reads `--config`) → [`types::DiffView`] |
//!
//! `/metrics` (Prometheus text) is served on its own TCP listener, not on this socket.
pub mod client;
pub mod server;
pub mod types;

/// Default socket path; the directory is created mode 0700 and the socket is mode 0600.
pub const DEFAULT_SOCKET: &str = "/run/sheave/sheaved.sock";
