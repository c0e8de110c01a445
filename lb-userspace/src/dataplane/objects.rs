//! The XDP objects built by `build.rs`, embedded so the binaries carry their own programs.

/// The load balancer (`lb-ebpf/src/bin/sheave-lb`).
pub static LB: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-lb"));

/// The backends' decapsulator (`lb-ebpf/src/bin/sheave-decap`).
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-decap"));

/// The pass-through program for veth peers (`lb-ebpf/src/bin/sheave-pass`).
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-pass"));
