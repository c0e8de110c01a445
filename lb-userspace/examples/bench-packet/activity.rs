//! What else the machine did while a case ran, from `/proc/stat`: how busy the other CPUs were
//! (they share caches and memory bandwidth with ours, and on a VM perhaps a physical core) and
//! how much time the hypervisor took from ours (steal). On a shared machine this is what explains
//! a figure that moved between runs.

/// Cumulative tick counts per CPU: (busy, steal, total).
pub struct Snapshot(Vec<(u64, u64, u64)>);

#[derive(Clone, Copy, Debug)]
pub struct Activity {
    /// Busy share of the CPUs other than ours, percent.
    pub others_busy: f64,
    /// Share of our CPU's time stolen by the hypervisor, percent.
    pub steal: f64,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut cpus = Vec::new();
        for line in text.lines() {
            // "cpuN user nice system idle iowait irq softirq steal ..."; not the "cpu" total.
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let Some(Ok(n)) = rest
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| fields.next().map(str::parse::<usize>))
                .flatten()
            else {
                continue;
            };
            let v: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
            if v.len() < 8 {
                continue;
            }
            let busy = v[0] + v[1] + v[2] + v[5] + v[6];
            let total: u64 = v[..8].iter().sum();
            if cpus.len() <= n {
                cpus.resize(n + 1, (0, 0, 0));
            }
            cpus[n] = (busy, v[7], total);
        }
        Snapshot(cpus)
    }

    /// Activity from `self` to `later`; `ours` is the CPU the benchmark is pinned to.
    pub fn until(&self, later: &Snapshot, ours: usize) -> Activity {
        let delta = |i: usize| {
            let (b0, s0, t0) = self.0.get(i).copied().unwrap_or_default();
            let (b1, s1, t1) = later.0.get(i).copied().unwrap_or_default();
            (
                b1.saturating_sub(b0),
                s1.saturating_sub(s0),
                t1.saturating_sub(t0),
            )
        };
        let (mut busy, mut total) = (0, 0);
        for i in (0..later.0.len()).filter(|&i| i != ours) {
            let (b, _, t) = delta(i);
            busy += b;
            total += t;
        }
        let (_, steal, our_total) = delta(ours);
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        Activity {
            others_busy: pct(busy, total),
            steal: pct(steal, our_total),
        }
    }
}
