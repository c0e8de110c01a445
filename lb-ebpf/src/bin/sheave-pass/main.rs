//! A pass-through XDP program. A veth interface delivers XDP_TX/XDP_REDIRECT frames only to a peer
//! that runs an XDP program, so when the load balancer runs on a veth (containers, VMs, the lab),
//! its peer gets this one: every frame continues into the kernel as usual.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
// Links the library: its panic handler and license.
use lb_ebpf as _;

#[xdp(frags)]
pub fn sheave_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

// Built for the host only by `cargo clippy --workspace`; the panic handler and license live in
// the library.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
