//! Types and logic shared by Sheave's XDP programs (lb-ebpf) and its userspace (lb-userspace).
//!
//! Everything that the kernel and userspace must agree on bit for bit lives here: map layouts,
//! counter indices and the flow hash. The `user` feature adds `aya::Pod` so userspace can read and
//! write these types in maps; the kernel side builds this crate as plain `no_std`.
#![no_std]

/// Compile-time proof that a `#[repr(C)]` type shared with the kernel is exactly `$size` bytes
/// and exactly the sum of the named fields: no implicit padding the two sides could read
/// differently, and no field added without the list (and the map layout version) noticing.
macro_rules! assert_layout {
    ($t:ty, $size:expr, [$($f:ident),+ $(,)?]) => {
        const _: () = {
            // SAFETY: every shared type is plain integers, for which all-zero is a valid value.
            let v: $t = unsafe { core::mem::zeroed() };
            assert!(core::mem::size_of::<$t>() == $size, "size changed");
            assert!(
                core::mem::size_of::<$t>() == 0 $(+ core::mem::size_of_val(&v.$f))+,
                "implicit padding, or a field missing from the list"
            );
        };
    };
}

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
    unsafe impl aya::Pod for crate::stats::Handshakes {}
    unsafe impl aya::Pod for crate::config::DataplaneConfig {}
    unsafe impl aya::Pod for crate::decap::DecapKey {}
    unsafe impl aya::Pod for crate::bench::BenchConfig {}
    unsafe impl aya::Pod for crate::bench::BenchResult {}
}
