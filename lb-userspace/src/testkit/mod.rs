//! What the dataplane tests and the packet benchmark share (the `testkit` feature, off in the
//! daemon's builds): the private network namespace they run in ([`netns`]), packet builders
//! ([`packets`]), and the load balancer loaded with a configuration and driven through
//! BPF_PROG_TEST_RUN, with the checks of what it did ([`lb`]); the backends' decap program
//! ([`decap`]).
pub mod decap;
pub mod lb;
pub mod netns;
pub mod packets;

pub use lb::{Ingress, Lb};

use anyhow::{Result, bail};

/// Keeps the calling thread on the CPU it runs on now, and returns that CPU: per-CPU state (the
/// flow table's LRU lists, the new-flow buckets, counters) is then the same for all its calls.
pub fn pin_to_current_cpu() -> Result<usize> {
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        bail!("sched_getcpu: {}", std::io::Error::last_os_error());
    }
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
    }
    Ok(cpu as usize)
}
