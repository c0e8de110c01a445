//! Bench-only entry point (`sheave_lb_bench`): times [`crate::balance`] — the very function the
//! production entry point runs — inside the program, N times per run in a `bpf_loop`, putting
//! the packet back as it was before each iteration (the outer header a forward added is
//! stripped, the Ethernet header rewritten). `cargo xtask bench packet` subtracts a restore-only
//! loop. Built only with the `bench` feature, into an object the daemon never embeds.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, bpf_loop, bpf_xdp_adjust_head},
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use lb_common::bench::{BENCH_MODE_RESTORE_ONLY, BenchConfig, BenchResult};

#[map]
static BENCH_CONFIG: Array<BenchConfig> = Array::with_max_entries(1, 0);
#[map]
static BENCH_RESULT: PerCpuArray<BenchResult> = PerCpuArray::with_max_entries(1, 0);

/// The loop's state, on the entry point's stack.
struct Loop {
    ctx: *const XdpContext,
    cfg: BenchConfig,
    action: u32,
    failed: u64,
}

#[xdp(frags)]
pub fn sheave_lb_bench(ctx: XdpContext) -> u32 {
    let Some(cfg) = BENCH_CONFIG.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let Some(result) = BENCH_RESULT.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let mut st = Loop {
        ctx: &ctx,
        cfg: *cfg,
        action: xdp_action::XDP_ABORTED,
        failed: 0,
    };
    // A direct cast: the callback must reach the helper as a function symbol (a
    // BPF_PSEUDO_FUNC relocation), never through an integer.
    let callback = iteration as *mut c_void;
    let t0 = unsafe { bpf_ktime_get_ns() };
    let ran = unsafe {
        bpf_loop(
            st.cfg.iterations,
            callback,
            &mut st as *mut Loop as *mut c_void,
            0,
        )
    };
    let t1 = unsafe { bpf_ktime_get_ns() };
    unsafe {
        (*result).ns += t1 - t0;
        (*result).ops += ran.max(0) as u64;
        (*result).failed += st.failed;
    }
    st.action
}

unsafe extern "C" fn iteration(index: u32, data: *mut c_void) -> i64 {
    let st = unsafe { &mut *(data as *mut Loop) };
    let ctx = unsafe { &*st.ctx };
    if !restore(ctx, &st.cfg, st.cfg.serial_base.wrapping_add(index)) {
        st.failed += 1;
        return 1;
    }
    if st.cfg.mode != BENCH_MODE_RESTORE_ONLY {
        st.action = crate::balance(ctx);
    }
    0
}

/// Put the frame back as the bench was given it.
#[inline(always)]
fn restore(ctx: &XdpContext, cfg: &BenchConfig, serial: u32) -> bool {
    let len = (ctx.data_end() - ctx.data()) as i64;
    let grown = len - cfg.frame_len as i64;
    if grown != 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, grown as i32) } != 0 {
        return false;
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 16 > end {
        return false;
    }
    unsafe { *(start as *mut [u8; 16]) = cfg.head };
    if cfg.vary_offset != 0 {
        let off = (cfg.vary_offset & 0xff) as usize;
        if start + off + 4 > end {
            return false;
        }
        unsafe { ((start + off) as *mut [u8; 4]).write_unaligned(serial.to_be_bytes()) };
    }
    true
}
