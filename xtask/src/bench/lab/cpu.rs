//! CPU time as the kernel accounts it: the whole machine's from `/proc/stat` and a process's
//! (all its threads) from `/proc/PID/stat`. Both count in clock ticks (USER_HZ, 100 a second
//! on Linux), so a figure is good to about 10 ms per CPU; runs last seconds for that reason.

use std::fs;

use anyhow::{Context, Result, bail};

/// Seconds per clock tick.
pub fn tick_s() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// All CPUs' time since boot, in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Machine {
    /// Everything but idle and iowait: user, nice, system, irq, softirq, steal.
    pub busy: u64,
    /// Of `busy`, the time in softirq: where XDP and the rest of the receive path run.
    pub softirq: u64,
}

impl Machine {
    pub fn read() -> Result<Machine> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_stat(&text)
    }

    /// Busy and softirq seconds from `earlier` to `self`.
    pub fn since(&self, earlier: &Machine) -> (f64, f64) {
        let t = tick_s();
        (
            self.busy.saturating_sub(earlier.busy) as f64 * t,
            self.softirq.saturating_sub(earlier.softirq) as f64 * t,
        )
    }
}

fn parse_stat(text: &str) -> Result<Machine> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no `cpu` line")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if v.len() < 8 {
        bail!("/proc/stat: short `cpu` line {line:?}");
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice].
    let (user, nice, system, irq, softirq, steal) = (v[0], v[1], v[2], v[5], v[6], v[7]);
    Ok(Machine {
        busy: user + nice + system + irq + softirq + steal,
        softirq,
    })
}

/// User plus system seconds of process `pid`, all threads, since it started.
pub fn process_s(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_pid_stat(&text).with_context(|| format!("parsing {path}"))? as f64 * tick_s())
}

/// utime + stime (fields 14 and 15) in ticks. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_pid_stat(text: &str) -> Result<u64> {
    let rest = text.rsplit_once(')').context("no `)`")?.1;
    // After `)`: state (3), ppid (4), ... so utime, field 14, is the 12th.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        f.get(i)
            .context("too few fields")?
            .parse()
            .context("not a number")
    };
    Ok(get(11)? + get(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let m = parse_stat("cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 5 0 2 500 3 1 1 2 0 0\n").unwrap();
        assert_eq!(m.busy, 10 + 1 + 5 + 2 + 3 + 4);
        assert_eq!(m.softirq, 3);
    }

    #[test]
    fn process_times_survive_odd_names() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 2 0 5 0";
        assert_eq!(parse_pid_stat(line).unwrap(), 287);
    }
}
