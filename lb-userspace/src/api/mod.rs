//! The HTTP/JSON API on a unix socket: the only way running state changes. The CLI, `config
//! apply` and (later) health checkers all use it, so there is one code path to test.
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
//! | GET | /v1/status | [`types::StatusView`] |
//! | GET | /v1/stats | [`types::StatsView`] |
//! | POST | /v1/explain | [`types::ExplainRequest`] → [`types::ExplainView`] |
//! | POST | /v1/config/diff, /v1/config/apply | [`types::ConfigRequest`] → [`types::DiffView`] |
pub mod client;
pub mod server;
pub mod types;

/// Default socket path; the directory is created mode 0700 and the socket is mode 0600.
pub const DEFAULT_SOCKET: &str = "/run/sheave/sheaved.sock";
