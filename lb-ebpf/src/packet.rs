//! Bounds-checked access to the packet buffer, in the form the verifier can follow.
use aya_ebpf::programs::XdpContext;

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
