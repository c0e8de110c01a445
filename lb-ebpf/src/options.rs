//! Step 1, the rare part: IPv4 options and IPv6 extension headers, checked as a router's or
//! host's kernel checks them (`ip_options_compile`, `ip6_parse_tlv`, the routing header rules)
//! so that nothing they would refuse reaches a backend.
//!
//! Each walk is a `bpf_loop` whose callback takes one step (an option, or an extension header).
//! How it is built is what lets the verifier accept it:
//! - the walk's state lives in a per-CPU map value ([`Scratch`]), not on the stack: the verifier
//!   knows nothing of what a map value holds, so a step is checked once for any state, where
//!   exact offsets and counters on the stack would make it check every iteration apart and
//!   never converge (inline, or with the state on the stack, the walks took the program past
//!   the verifier's million instructions);
//! - the packet is read with `bpf_xdp_load_bytes`, whose offset needs no bounds the verifier
//!   can see (it also reads past the first buffer of a multi-buffer frame).
//!
//! Packets without options or extension headers never get here.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_loop, bpf_xdp_load_bytes},
    maps::PerCpuArray,
    programs::XdpContext,
};
use lb_common::stats::Stat;

use crate::headers::{ETH_HLEN, IPV4_HLEN, IPV6_HLEN};

/// IPv4 options area: at most 40 bytes, so at most 40 options.
const IPV4_MAX_OPTIONS: u32 = 40;
/// Steps of the IPv6 extension walk: a header or one option each. A chain of 4 headers of a few
/// options each fits easily; longer ones go to the kernel.
const IPV6_EXT_STEPS: u32 = 64;
/// How many IPv6 extension headers we walk before giving up (the kernel gets the packet).
const IPV6_MAX_EXT: u32 = 4;

/// IPv6 extension headers we walk past to find the transport header.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DSTOPTS: u8 = 60;
/// IPv6 options (in Hop-by-Hop and Destination Options headers) with rules of their own.
const IPV6_OPT_PAD1: u8 = 0;
const IPV6_OPT_PADN: u8 = 1;
const IPV6_OPT_RA: u8 = 5;

/// IPv4 options with rules of their own.
const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_RR: u8 = 7;
const IPOPT_TIMESTAMP: u8 = 68;
const IPOPT_LSRR: u8 = 131;
const IPOPT_CIPSO: u8 = 134;
const IPOPT_SSRR: u8 = 137;
const IPOPT_RA: u8 = 148;

/// `bpf_loop`'s callback answers: go on, or stop.
const NEXT: i64 = 0;
const STOP: i64 = 1;

/// A walk's state: one per CPU, in the program's `PARSE_SCRATCH` map (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Scratch {
    off: u32,
    end: u32,
    /// IPv6, inside an options header: where its options end.
    opts_end: u32,
    /// IPv6: the header the walk is at, or the one whose options it reads.
    next: u8,
    /// IPv6: headers entered so far.
    headers: u8,
    /// IPv6, inside an options header: padding bytes in a row, and options (not padding) seen.
    pad: u8,
    opts: u8,
    /// `F_*` bits.
    flags: u8,
    /// `OUT_*`: how the walk ended (0 while it walks).
    outcome: u8,
}

const F_RECORD_ROUTE: u8 = 1;
const F_TIMESTAMP: u8 = 2;
const F_IN_OPTIONS: u8 = 4;
const F_HOP_BY_HOP: u8 = 8;

const OUT_OK: u8 = 1;
const OUT_BAD_IP_OPTIONS: u8 = 2;
const OUT_BAD_IPV6_EXT: u8 = 3;
const OUT_SOURCE_ROUTE: u8 = 4;
const OUT_KERNEL: u8 = 5;

fn outcome_of(why: Stat) -> u8 {
    match why {
        Stat::DropBadIpOptions => OUT_BAD_IP_OPTIONS,
        Stat::DropBadIpv6Ext => OUT_BAD_IPV6_EXT,
        Stat::DropSourceRoute => OUT_SOURCE_ROUTE,
        _ => OUT_KERNEL,
    }
}

/// The walk's result: `Ok` once it reached its end, else why not.
fn result_of(outcome: u8) -> Result<(), Stat> {
    match outcome {
        OUT_OK => Ok(()),
        OUT_BAD_IP_OPTIONS => Err(Stat::DropBadIpOptions),
        OUT_BAD_IPV6_EXT => Err(Stat::DropBadIpv6Ext),
        OUT_SOURCE_ROUTE => Err(Stat::DropSourceRoute),
        // Out of steps, or a frame shorter than its headers: the kernel decides.
        _ => Err(Stat::PassUnparsed),
    }
}

/// What a `bpf_loop` callback gets: the packet and the walk's state.
struct Walk {
    ctx: *const XdpContext,
    s: *mut Scratch,
}

/// Runs `step` up to `n` times over `s` in a `bpf_loop`; how the walk ended.
#[inline(always)]
fn walk(
    ctx: &XdpContext,
    s: *mut Scratch,
    n: u32,
    step: unsafe extern "C" fn(u32, *mut c_void) -> i64,
) -> Result<(), Stat> {
    let mut w = Walk { ctx, s };
    // A direct cast: the callback must reach the helper as a function symbol (a
    // BPF_PSEUDO_FUNC relocation), never through an integer.
    let callback = step as *mut c_void;
    unsafe { bpf_loop(n, callback, &mut w as *mut Walk as *mut c_void, 0) };
    result_of(unsafe { (*s).outcome })
}

/// The state of a callback's walk.
#[inline(always)]
fn state<'a>(data: *mut c_void) -> (&'a XdpContext, &'a mut Scratch) {
    let w = unsafe { &*(data as *const Walk) };
    unsafe { (&*w.ctx, &mut *w.s) }
}

/// Ends a step: go on, or record the outcome and stop.
#[inline(always)]
fn step_done(s: &mut Scratch, r: Result<bool, Stat>) -> i64 {
    match r {
        Ok(true) => NEXT,
        Ok(false) => {
            s.outcome = OUT_OK;
            STOP
        }
        Err(why) => {
            s.outcome = outcome_of(why);
            STOP
        }
    }
}

/// `N` bytes of the packet at `off`, if it has them (`PassUnparsed`: the frame is shorter).
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, off: u32) -> Result<[u8; N], Stat> {
    let mut buf = [0u8; N];
    let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, off, buf.as_mut_ptr() as *mut c_void, N as u32) };
    if r == 0 {
        Ok(buf)
    } else {
        Err(Stat::PassUnparsed)
    }
}

/// Check the IPv4 options of a header of `ihl` (> 20) bytes; an error for what Linux refuses
/// in a received packet. Unknown options with a sane length are fine (routers pass them on).
#[inline(always)]
pub fn ipv4(ctx: &XdpContext, ihl: usize, scratch: &PerCpuArray<Scratch>) -> Result<(), Stat> {
    let s = scratch.get_ptr_mut(0).ok_or(Stat::PassUnparsed)?;
    unsafe {
        *s = Scratch {
            off: (ETH_HLEN + IPV4_HLEN) as u32,
            end: (ETH_HLEN + ihl) as u32,
            ..Scratch::default()
        };
    }
    // Every step takes a byte at least: 40 steps always reach the end of 40 bytes.
    walk(ctx, s, IPV4_MAX_OPTIONS, ipv4_step)
}

unsafe extern "C" fn ipv4_step(_: u32, data: *mut c_void) -> i64 {
    let (ctx, s) = state(data);
    let r = ipv4_option(ctx, s);
    step_done(s, r)
}

/// One option at `s.off`: whether there may be more.
#[inline(always)]
fn ipv4_option(ctx: &XdpContext, s: &mut Scratch) -> Result<bool, Stat> {
    const BAD: Stat = Stat::DropBadIpOptions;
    if s.off >= s.end {
        return Ok(false);
    }
    // Kind, length, pointer, flags: only what the length covers is used, but four bytes are read
    // at once (any packet worth forwarding has a transport header after them).
    let [kind, len, ptr, flags] = load::<4>(ctx, s.off)?;
    if kind == IPOPT_END {
        return Ok(false);
    }
    if kind == IPOPT_NOOP {
        s.off += 1;
        return Ok(true);
    }
    let left = s.end - s.off;
    let (len, ptr) = (len as u32, ptr as u32);
    if left < 2 || len < 2 || len > left {
        return Err(BAD);
    }
    // If-chains, not a `match`: a switch may become a jump table, which BPF lacks.
    if kind == IPOPT_LSRR || kind == IPOPT_SSRR {
        // Well-formed or not, a VIP cannot serve as a hop of a source route.
        return Err(if len < 3 || ptr < 4 {
            BAD
        } else {
            Stat::DropSourceRoute
        });
    } else if kind == IPOPT_RR {
        if s.flags & F_RECORD_ROUTE != 0 || len < 3 || ptr < 4 || (ptr <= len && ptr + 3 > len) {
            return Err(BAD);
        }
        s.flags |= F_RECORD_ROUTE;
    } else if kind == IPOPT_TIMESTAMP {
        // Flags 0 (timestamps), 1 (with addresses), 3 (prespecified); RFC 791 defines no other,
        // and Sheave refuses them (Linux accepts them from the wire).
        let flag = flags & 0x0F;
        if s.flags & F_TIMESTAMP != 0 || len < 4 || ptr < 5 || !matches!(flag, 0 | 1 | 3) {
            return Err(BAD);
        }
        // Room for the next entry (4 bytes, 8 with an address); once full, an overflow count
        // that has not overflowed itself.
        let entry = if flag == 0 { 4 } else { 8 };
        let full = ptr > len;
        if (!full && ptr + entry - 1 > len) || (full && flag != 3 && flags >> 4 == 0x0F) {
            return Err(BAD);
        }
        s.flags |= F_TIMESTAMP;
    } else if kind == IPOPT_RA {
        if len < 4 {
            return Err(BAD);
        }
    } else if kind == IPOPT_CIPSO {
        // Its own validation (a DOI's tags) is the kernel's to apply.
        return Err(Stat::PassUnparsed);
    }
    s.off += len;
    Ok(true)
}

/// Walk the extension headers after the fixed IPv6 header (whose next header is `next`) up to
/// a payload ending at `end`: the transport protocol and its offset, or why the chain is one a
/// host would refuse. Hop-by-Hop and Destination Options headers have their options checked; a
/// routing header must have no segments left.
#[inline(always)]
pub fn ipv6(
    ctx: &XdpContext,
    next: u8,
    end: usize,
    scratch: &PerCpuArray<Scratch>,
) -> Result<(u8, usize), Stat> {
    let off = ETH_HLEN + IPV6_HLEN;
    if !is_extension(next) {
        return Ok((next, off));
    }
    let s = scratch.get_ptr_mut(0).ok_or(Stat::PassUnparsed)?;
    unsafe {
        *s = Scratch {
            off: off as u32,
            end: end as u32,
            next,
            ..Scratch::default()
        };
    }
    walk(ctx, s, IPV6_EXT_STEPS, ipv6_step)?;
    let s = unsafe { &*s };
    Ok((s.next, s.off as usize))
}

#[inline(always)]
fn is_extension(next: u8) -> bool {
    next == IPV6_HOPOPTS || next == IPV6_ROUTING || next == IPV6_DSTOPTS
}

unsafe extern "C" fn ipv6_step(_: u32, data: *mut c_void) -> i64 {
    let (ctx, s) = state(data);
    let r = if s.flags & F_IN_OPTIONS != 0 {
        ipv6_option(ctx, s).map(|()| true)
    } else {
        ipv6_header(ctx, s)
    };
    step_done(s, r)
}

/// Between headers: the transport header reached (`false`: done, `s.next` and `s.off` say
/// where), or the next extension header entered.
#[inline(always)]
fn ipv6_header(ctx: &XdpContext, s: &mut Scratch) -> Result<bool, Stat> {
    const BAD: Stat = Stat::DropBadIpv6Ext;
    if !is_extension(s.next) {
        return Ok(false);
    }
    if s.headers as u32 == IPV6_MAX_EXT {
        return Err(Stat::PassUnparsed);
    }
    // Hop-by-Hop may only come first (RFC 8200 4.1).
    if s.next == IPV6_HOPOPTS && s.headers > 0 {
        return Err(BAD);
    }
    // Next header, length in 8-byte units after the first 8, and for a routing header its
    // type and segments left.
    let h = load::<4>(ctx, s.off)?;
    let len = (h[1] as u32 + 1) * 8;
    if s.off + len > s.end {
        return Err(BAD);
    }
    if s.next == IPV6_ROUTING {
        if h[3] != 0 {
            return Err(Stat::DropSourceRoute);
        }
        s.off += len;
    } else {
        s.flags = F_IN_OPTIONS
            | if s.next == IPV6_HOPOPTS {
                F_HOP_BY_HOP
            } else {
                0
            };
        s.opts_end = s.off + len;
        s.off += 2;
        s.pad = 0;
        s.opts = 0;
    }
    s.next = h[0];
    s.headers += 1;
    Ok(true)
}

/// Inside an options header: one option (or the end of the header).
#[inline(always)]
fn ipv6_option(ctx: &XdpContext, s: &mut Scratch) -> Result<(), Stat> {
    const BAD: Stat = Stat::DropBadIpv6Ext;
    if s.off >= s.opts_end {
        s.flags = 0;
        return Ok(());
    }
    // Type, length and up to 6 bytes of data in one read (only what the length covers is used).
    let o = load::<8>(ctx, s.off)?;
    // Padding only aligns to 8 bytes: no more than 7 bytes of it in a row (RFC 4942).
    if o[0] == IPV6_OPT_PAD1 {
        s.pad += 1;
        if s.pad > 7 {
            return Err(BAD);
        }
        s.off += 1;
        return Ok(());
    }
    let len = o[1] as u32 + 2;
    if len > s.opts_end - s.off {
        return Err(BAD);
    }
    if o[0] == IPV6_OPT_PADN {
        if len > 7 || s.pad as u32 + len > 7 {
            return Err(BAD);
        }
        s.pad += len as u8;
        // Its bytes are zero (RFC 4942); at most 5 of them, within the 8 read.
        let mask = (1u64 << (8 * (len - 2))) - 1;
        if (u64::from_le_bytes(o) >> 16) & mask != 0 {
            return Err(BAD);
        }
    } else {
        // As many options as Linux takes in one header (its default `max_*_opts_cnt`). The two
        // high bits of an option's type say what a receiver that does not know it does: skip it
        // (00), or discard the packet; Jumbo Payload (0xC2) is one of the latter, and no
        // jumbogram fits the links we forward to. A Router Alert is 2 bytes of value.
        s.opts += 1;
        s.pad = 0;
        if s.opts > 8
            || o[0] >> 6 != 0
            || (s.flags & F_HOP_BY_HOP != 0 && o[0] == IPV6_OPT_RA && o[1] != 2)
        {
            return Err(BAD);
        }
    }
    s.off += len;
    Ok(())
}
