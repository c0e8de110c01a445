//! The bench-only XDP entry point's control and result (`BENCH_CONFIG`, `BENCH_RESULT`): it runs
//! the production packet function many times inside one program run (`bpf_loop`), restoring the
//! packet between iterations, so the figure excludes BPF_PROG_TEST_RUN's own overhead.

/// What one run of the bench entry point does.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BenchConfig {
    /// Iterations per program run.
    pub iterations: u32,
    /// `BENCH_MODE_*`.
    pub mode: u32,
    /// Length of the frame as given (the program strips what an iteration added in front).
    pub frame_len: u32,
    /// Offset in the frame of 4 bytes to make unique per iteration (e.g. the IPv4 source
    /// address: every iteration a new flow), 0 for none.
    pub vary_offset: u32,
    /// The unique value of the first iteration of this run (then +1 per iteration).
    pub serial_base: u32,
    pub _pad: u32,
    /// The frame's first bytes (Ethernet header), restored before each iteration: forwarding
    /// rewrites the MAC addresses.
    pub head: [u8; 16],
}
assert_layout!(
    BenchConfig,
    40,
    [
        iterations,
        mode,
        frame_len,
        vary_offset,
        serial_base,
        _pad,
        head
    ]
);

/// Restore the packet, then run the packet function.
pub const BENCH_MODE_BALANCE: u32 = 0;
/// Only restore the packet: the loop's own cost, subtracted from the other mode's.
pub const BENCH_MODE_RESTORE_ONLY: u32 = 1;

/// Per CPU: accumulated over program runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BenchResult {
    /// Nanoseconds the loops took (`bpf_ktime_get_ns` around `bpf_loop`).
    pub ns: u64,
    /// Iterations run.
    pub ops: u64,
    /// Iterations whose packet could not be restored (the loop stops there).
    pub failed: u64,
}
assert_layout!(BenchResult, 24, [ns, ops, failed]);
