//! Bounds-checked access to the packet buffer, in the form the verifier can follow.
//!
//! The programs are multi-buffer aware (`xdp.frags`: jumbo frames on links whose driver splits
//! them into pages): `data..data_end` is only the first buffer, which holds every header the
//! programs read (a frame whose headers do not fit it goes to the kernel); lengths are checked
//! against the whole frame ([`holds`], [`frame_len`]).
use aya_ebpf::{helpers::bpf_xdp_get_buff_len, programs::XdpContext};

/// A pointer to a `T` at `offset` bytes into the packet, if the whole `T` lies inside it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Whether the packet holds at least `len` bytes from its start.
#[inline(always)]
pub fn has_bytes(ctx: &XdpContext, len: usize) -> bool {
    ctx.data() + len <= ctx.data_end()
}

/// The whole frame's length, every buffer of a multi-buffer frame included.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    unsafe { bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

/// Whether the frame holds at least `len` bytes, in its first buffer or beyond (the helper call
/// only for the rare frame longer than its first buffer).
#[inline(always)]
pub fn holds(ctx: &XdpContext, len: usize) -> bool {
    has_bytes(ctx, len) || len <= frame_len(ctx)
}
