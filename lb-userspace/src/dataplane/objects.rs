//! The XDP objects built by `build.rs`, embedded so the binaries carry their own programs.

/// The load balancer (`lb-ebpf/src/bin/sheave-lb`).
pub static LB: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-lb"));

/// The backends' decapsulator (`lb-ebpf/src/bin/sheave-decap`).
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-decap"));

/// The pass-through program for veth peers (`lb-ebpf/src/bin/sheave-pass`).
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-pass"));

static LB_OVERRIDE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Load the load balancer from other bytes than the embedded object (`sheaved --bpf-object`, to
/// rehearse an upgrade of the program under a running data plane). First call wins.
pub fn override_lb(object: Vec<u8>) {
    let _ = LB_OVERRIDE.set(object);
}

/// The load balancer's object: the override if one was set, else the embedded one.
pub fn lb() -> &'static [u8] {
    LB_OVERRIDE.get().map_or(LB, Vec::as_slice)
}
