//! Control-plane benchmarks that need no data plane: how long `sheaved` takes to build a Maglev
//! ring, and how many flows a ring change moves. `cargo xtask bench maglev` builds this in release
//! mode and runs it; by hand:
//!
//! ```sh
//! cargo run --release -p lb-userspace --example bench-control -- maglev [--runs 30] [--json F]
//! ```
//!
//! It runs the daemon's own `maglev::build` with backend identities made the way the daemon makes
//! them (the 16 bytes of an IPv4-mapped address), so the figures are those of real rings. The
//! machine is shared and noisy: figures are printed, never asserted, and build times are given as
//! percentiles over many runs rather than one number.
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use lb_userspace::maglev::{Member, build};
use serde_json::{Value, json};

/// Build time the issue asks for at N = 1000, M = 65537.
const GOAL_1000: Duration = Duration::from_millis(2);
/// Builds run before timing, so that the allocator and caches are warm for the first sample.
const WARMUP: usize = 3;
/// The weighted case: backends with weights cycling through 1..=WEIGHT_CYCLE.
const WEIGHTED_BACKENDS: u32 = 100;
const WEIGHT_CYCLE: u32 = 4;

#[derive(Parser)]
#[command(about = "Sheave's control-plane benchmarks (no root needed)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Maglev: ring build time, balance, weights, and flows moved when a backend goes.
    Maglev(MaglevArgs),
}

#[derive(clap::Args)]
struct MaglevArgs {
    /// Timed builds per case (after a few untimed ones).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Ring size M (a prime).
    #[arg(long, default_value_t = 65_537)]
    ring_size: u32,
    /// Backend counts N, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    backends: Vec<u32>,
    /// How many different backends to remove, one at a time, per N.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    removals: u32,
    /// Also write the raw figures here, as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Maglev(a) => maglev(&a),
    }
}

fn maglev(a: &MaglevArgs) -> Result<()> {
    let m = a.ring_size;
    if !is_prime(m) {
        bail!("--ring-size {m} is not a prime");
    }
    if let Some(&n) = a.backends.iter().find(|&&n| n == 0 || n > m / 10) {
        bail!("{n} backends do not fit a ring of {m} (sheaved wants 1..=M/10)");
    }
    let runs = a.runs as usize;
    let mut builds = Vec::new();
    for &n in &a.backends {
        let idents = identities(n);
        let members = equal(&idents);
        builds.push(BuildCase::measure(format!("N = {n}"), &members, m, runs));
    }
    let idents = identities(WEIGHTED_BACKENDS);
    let weighted = weighted(&idents);
    let w_case = BuildCase::measure(
        format!("N = {WEIGHTED_BACKENDS}, w 1..{WEIGHT_CYCLE}"),
        &weighted,
        m,
        runs,
    );
    let disruption: Vec<Disruption> = a
        .backends
        .iter()
        .map(|&n| Disruption::measure(n, m, a.removals))
        .collect();

    print_builds(&builds, &w_case, m, runs);
    print_disruption(&disruption, m);

    if let Some(path) = &a.json {
        let v = json!({
            "ring_size": m,
            "runs": runs,
            "warmup": WARMUP,
            "goal_ms_at_1000": GOAL_1000.as_secs_f64() * 1e3,
            "build": builds.iter().map(BuildCase::to_json).collect::<Vec<_>>(),
            "weighted": w_case.to_json(),
            "disruption": disruption.iter().map(Disruption::to_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Backend `i`'s identity as the daemon makes it: 198.18.0.1 + i, IPv4-mapped, 16 bytes.
fn identities(n: u32) -> Vec<[u8; 16]> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 1));
    (0..n)
        .map(|i| Ipv4Addr::from(base + i).to_ipv6_mapped().octets())
        .collect()
}

/// Members with ids 0..n (the ring stores ids), all of weight 1.
fn equal(idents: &[[u8; 16]]) -> Vec<Member<'_>> {
    members(idents, |_| 1)
}

fn weighted(idents: &[[u8; 16]]) -> Vec<Member<'_>> {
    members(idents, |i| 1 + i % WEIGHT_CYCLE)
}

fn members(idents: &[[u8; 16]], weight: impl Fn(u32) -> u32) -> Vec<Member<'_>> {
    (0u32..)
        .zip(idents)
        .map(|(id, identity)| Member {
            id,
            identity,
            weight: weight(id),
        })
        .collect()
}

/// Slots per member id, for ids 0..n.
fn counts(table: &[u32], n: usize) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for &id in table {
        c[id as usize] += 1;
    }
    c
}

/// Build times of one member set, and how closely the ring follows the weights.
struct BuildCase {
    label: String,
    backends: usize,
    /// Sorted.
    samples: Vec<Duration>,
    /// The same in the order taken, for the record: drift over a run stays visible.
    taken: Vec<Duration>,
    /// max over members of |share − weight share| / weight share.
    max_share_error: f64,
    /// Mean of the same over members.
    mean_share_error: f64,
}

impl BuildCase {
    fn measure(label: String, members: &[Member<'_>], m: u32, runs: usize) -> BuildCase {
        for _ in 0..WARMUP {
            black_box(build(black_box(members), black_box(m)));
        }
        let taken: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let table = build(black_box(members), black_box(m));
                let d = t.elapsed();
                // Dropped after the clock stops: freeing is not part of building.
                black_box(table);
                d
            })
            .collect();
        let mut samples = taken.clone();
        samples.sort();
        let table = build(members, m);
        let total_weight: u64 = members.iter().map(|b| b.weight as u64).sum();
        let errors: Vec<f64> = counts(&table, members.len())
            .iter()
            .zip(members)
            .map(|(&c, b)| {
                let want = b.weight as f64 / total_weight as f64;
                (c as f64 / m as f64 - want).abs() / want
            })
            .collect();
        BuildCase {
            label,
            backends: members.len(),
            samples,
            taken,
            max_share_error: errors.iter().copied().fold(0.0, f64::max),
            mean_share_error: errors.iter().sum::<f64>() / errors.len() as f64,
        }
    }

    /// Nearest-rank percentile of the sorted samples.
    fn pct(&self, p: f64) -> Duration {
        percentile(&self.samples, p)
    }

    fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        json!({
            "case": self.label,
            "backends": self.backends,
            "min_ms": ms(self.samples[0]),
            "p10_ms": ms(self.pct(10.0)),
            "median_ms": ms(self.pct(50.0)),
            "p90_ms": ms(self.pct(90.0)),
            "max_ms": ms(self.samples[self.samples.len() - 1]),
            "samples_ms": self.taken.iter().map(|&d| ms(d)).collect::<Vec<_>>(),
            "max_share_error": self.max_share_error,
            "mean_share_error": self.mean_share_error,
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One backend removed from an N-backend ring: which slots changed owner.
struct Removal {
    removed: u32,
    /// Slots the removed backend held: these must move (its share, about 1/N).
    own: f64,
    /// Slots whose backend stayed but that moved anyway: Maglev's extra disruption.
    others: f64,
}

impl Removal {
    fn total(&self) -> f64 {
        self.own + self.others
    }
}

struct Disruption {
    backends: u32,
    removals: Vec<Removal>,
}

impl Disruption {
    /// Removes `tries` different backends, spread over the ids, one at a time from the full set.
    fn measure(n: u32, m: u32, tries: u32) -> Disruption {
        let idents = identities(n);
        let all = equal(&idents);
        let before = build(&all, m);
        let mut picks: Vec<u32> = (0..tries.min(n)).map(|j| j * n / tries.min(n)).collect();
        picks.dedup();
        let removals = picks
            .into_iter()
            .map(|k| {
                let rest: Vec<Member<'_>> = all.iter().filter(|b| b.id != k).cloned().collect();
                let after = build(&rest, m);
                let (mut own, mut others) = (0u64, 0u64);
                for (&b, &a) in before.iter().zip(&after) {
                    if b == k {
                        own += 1;
                    } else if a != b {
                        others += 1;
                    }
                }
                Removal {
                    removed: k,
                    own: own as f64 / m as f64,
                    others: others as f64 / m as f64,
                }
            })
            .collect();
        Disruption {
            backends: n,
            removals,
        }
    }

    fn ideal(&self) -> f64 {
        1.0 / self.backends as f64
    }

    fn mean(&self, f: impl Fn(&Removal) -> f64) -> f64 {
        self.removals.iter().map(f).sum::<f64>() / self.removals.len() as f64
    }

    fn max(&self, f: impl Fn(&Removal) -> f64) -> f64 {
        self.removals.iter().map(f).fold(0.0, f64::max)
    }

    fn to_json(&self) -> Value {
        json!({
            "backends": self.backends,
            "ideal": self.ideal(),
            "mean_total": self.mean(Removal::total),
            "max_total": self.max(Removal::total),
            "mean_own": self.mean(|r| r.own),
            "mean_others": self.mean(|r| r.others),
            "max_others": self.max(|r| r.others),
            "removals": self.removals.iter().map(|r| json!({
                "removed_id": r.removed,
                "own": r.own,
                "others": r.others,
                "total": r.total(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn print_builds(builds: &[BuildCase], weighted: &BuildCase, m: u32, runs: usize) {
    println!();
    println!(
        "Maglev ring build time, M = {m}, in ms ({runs} timed runs after {WARMUP} warm-up, \
         release build)"
    );
    // Group headings over the columns below them.
    println!(
        "{}",
        format!("  {:52}   {:^17}", "", "share error").trim_end()
    );
    println!(
        "  {:<16} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8}",
        "backends", "min", "p10", "median", "p90", "max", "mean"
    );
    for c in builds.iter().chain([weighted]) {
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8}",
            c.label,
            ms(c.samples[0]),
            ms(c.pct(10.0)),
            ms(c.pct(50.0)),
            ms(c.pct(90.0)),
            pct(c.max_share_error),
            pct(c.mean_share_error),
        );
    }
    if let Some(c) = builds.iter().find(|c| c.backends == 1000) {
        let median = c.pct(50.0);
        let verdict = if median <= GOAL_1000 { "met" } else { "MISSED" };
        println!(
            "  goal: median <= {} ms at N = 1000: {verdict} ({} ms)",
            ms(GOAL_1000),
            ms(median)
        );
    }
    println!("  share error: |slots/M - weight share| / weight share, over the backends");
}

fn print_disruption(cases: &[Disruption], m: u32) {
    println!();
    println!(
        "Maglev disruption: one of N backends removed, M = {m}; fraction of ring slots (new \
         flows) that changed backend"
    );
    println!(
        "{}",
        format!(
            "  {:25}   {:^25}   {:^8}   {:^17}",
            "", "moved", "own", "others"
        )
        .trim_end()
    );
    println!(
        "  {:<10} {:>5} {:>8}   {:>8} {:>8} {:>7}   {:>8}   {:>8} {:>8}",
        "backends", "tries", "ideal", "mean", "max", "/ideal", "mean", "mean", "max"
    );
    for d in cases {
        println!(
            "  {:<10} {:>5} {:>8}   {:>8} {:>8} {:>7}   {:>8}   {:>8} {:>8}",
            format!("N = {}", d.backends),
            d.removals.len(),
            pct(d.ideal()),
            pct(d.mean(Removal::total)),
            pct(d.max(Removal::total)),
            format!("{:.2}x", d.mean(Removal::total) / d.ideal()),
            pct(d.mean(|r| r.own)),
            pct(d.mean(|r| r.others)),
            pct(d.max(|r| r.others)),
        );
    }
    println!(
        "  ideal = 1/N; moved = own + others; own = the removed backend's slots (they must move); \
         others = slots\n  whose backend stayed but that moved anyway (Maglev's extra disruption)"
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn pct(f: f64) -> String {
    format!("{:.3}%", f * 100.0)
}

fn is_prime(n: u32) -> bool {
    let n = u64::from(n);
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}
