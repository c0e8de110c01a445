//! Sheave's lab: real hosts as network namespaces joined by a bridge, used by the end-to-end tests
//! in `tests/` and by `cargo xtask demo`.
pub mod deploy;
pub mod health;
pub mod lab;
pub mod restart;
pub mod traffic;
