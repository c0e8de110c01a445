//! Types and logic shared by Sheave's XDP programs (lb-ebpf) and its userspace (lb-userspace).
//!
//! Everything that the kernel and userspace must agree on bit for bit lives here: map layouts,
//! counter indices and the flow hash. The `user` feature adds `aya::Pod` so userspace can read and
//! write these types in maps; the kernel side builds this crate as plain `no_std`.
#![no_std]

pub mod addr;
pub mod backend;
pub mod bench;
pub mod config;
pub mod decap;
pub mod flow;
pub mod hash;
pub mod limits;
pub mod stats;
pub mod vip;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, `Copy`, made only of integers and has no implicit
    // padding (explicit `_pad` fields instead), so any byte pattern is a valid value.
    unsafe impl aya::Pod for crate::vip::VipKey {}
    unsafe impl aya::Pod for crate::vip::VipMeta {}
    unsafe impl aya::Pod for crate::vip::FloodBucket {}
    unsafe impl aya::Pod for crate::backend::Backend {}
    unsafe impl aya::Pod for crate::flow::FlowKey {}
    unsafe impl aya::Pod for crate::flow::FlowState {}
    unsafe impl aya::Pod for crate::stats::Counter {}
    unsafe impl aya::Pod for crate::config::DataplaneConfig {}
    unsafe impl aya::Pod for crate::decap::DecapKey {}
    unsafe impl aya::Pod for crate::bench::BenchConfig {}
    unsafe impl aya::Pod for crate::bench::BenchResult {}
}
