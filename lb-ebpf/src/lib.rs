//! Sheave's packet path, shared by the XDP programs in `src/bin/`.
//!
//! A packet for the load balancer goes through these modules in order:
//! [`parse`] (with [`options`] for the rare IPv4 options and IPv6 extension headers) → (the
//! program's own lookup and scheduling, which own the maps) → [`encap`] → [`transmit`]. The backends' program uses [`decap`]. [`headers`], [`packet`] and [`csum`] are
//! the pieces they share.
#![no_std]

pub mod csum;
pub mod decap;
pub mod encap;
pub mod headers;
pub mod icmp;
pub mod options;
pub mod packet;
pub mod parse;
pub mod transmit;

/// Programs must never panic (the verifier rejects the loop below if a panic is reachable), but
/// `no_std` binaries need a handler; every program binary links this one.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible license: required for the helpers the programs call (FIB lookup, redirect).
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
