//! Running one case: a freshly loaded load balancer (so cases never see each other's flows), the
//! case's flows established untimed, then warm-up and timed trials of single BPF_PROG_TEST_RUN
//! calls alternating with the empty program, and finally the checks that the program did what
//! the case claims to measure (every call's action, the flow-table counters, the inserts).
use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use lb_common::stats::{STAT_COUNT, Stat};
use lb_userspace::maps::MapStore as _;
use lb_userspace::{
    config::{Config, Protocol},
    dataplane::Dataplane,
    testkit::{
        lb::{Lb, XDP_TX, action_name, xdp_md},
        packets,
    },
    wire::flow_key,
};

use crate::cases::{self, Case, Traffic};

#[derive(Clone, Copy)]
pub struct Settings {
    /// Calls per trial, for the case and for the empty program each.
    pub calls: u64,
    pub trials: usize,
    /// Untimed calls of each program before the first trial.
    pub warmup: u64,
    /// ifindex of the interface the packets arrive on.
    pub ingress: u32,
    /// Flow-table entries on one CPU's LRU list (the table is split evenly over the possible
    /// CPUs, and an insert evicts only from its own CPU's list; the process is pinned to one).
    pub lru_share: u64,
}

impl Settings {
    /// Calls of the case's program, warm-up included: what the counters must add up to.
    pub fn case_calls(&self) -> u64 {
        self.warmup + self.calls * self.trials as u64
    }
}

/// Mean kernel-reported ns per call of one trial.
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    pub case_ns: f64,
    pub baseline_ns: f64,
    /// The flow-table floor's, for cases that use the flow table.
    pub floor_ns: Option<f64>,
}

impl Trial {
    pub fn net_ns(&self) -> f64 {
        self.case_ns - self.baseline_ns
    }

    /// The floor net of the empty program.
    pub fn floor_net_ns(&self) -> Option<f64> {
        Some(self.floor_ns? - self.baseline_ns)
    }

    /// What the load balancer adds to its flow table's share.
    pub fn over_floor_ns(&self) -> Option<f64> {
        Some(self.case_ns - self.floor_ns?)
    }
}

pub struct Outcome {
    pub trials: Vec<Trial>,
    /// What the flow table did, e.g. "102000/102000 hits".
    pub flow_table: String,
    /// Everything that was not as the case claims; empty when the figures are valid.
    pub problems: Vec<String>,
    /// The same checks of the floor's calls, on its own table.
    pub floor: Option<Checks>,
}

/// What a timed program's calls and its flow table showed, against what the case claims.
pub struct Checks {
    pub flow_table: String,
    pub problems: Vec<String>,
}

/// A loaded load balancer with the benchmark's VIPs, filled exactly as `sheaved` fills one, from
/// the bench object (`sheave_lb` and its maps, plus the bench-only entry points).
pub fn load(s: &Settings) -> Result<Dataplane> {
    let cfg = Config::parse(cases::CONFIG)?;
    Ok(Lb::load(s.ingress, &cfg, Dataplane::load_bench)?.dp)
}

/// Which of the object's programs a stream times. The table state before it is always made by
/// `sheave_lb` itself.
#[derive(Clone, Copy)]
enum Timed {
    Lb,
    /// `sheave_flow_floor`: only the flow table's lookup and insert.
    Floor,
}

/// A program being timed on its own prepared dataplane, and the packets it has had so far
/// (calls count from the case's first packet, so two streams of one case send the same packets
/// in the same order).
struct Stream<'a> {
    prog: &'a Xdp,
    cycle: Vec<Vec<u8>>,
    first: u64,
    next: u64,
    /// The global counters when timing began.
    before: [u64; STAT_COUNT as usize],
    check: ActionCheck,
}

impl Stream<'_> {
    /// Prepares `dp` for the case (untimed) and readies `timed` on it.
    fn start<'a>(
        case: &Case,
        dp: &'a mut Dataplane,
        timed: Timed,
        s: &Settings,
    ) -> Result<Stream<'a>> {
        let Prepared { cycle, first } = establish(case, dp, s)?;
        let before = dp.global_stats()?;
        let prog = match timed {
            Timed::Lb => dp.program()?,
            Timed::Floor => dp.floor_program()?,
        };
        Ok(Stream {
            prog,
            cycle,
            first,
            next: first,
            before,
            check: ActionCheck::new(expected_action(&case.traffic)),
        })
    }

    /// `n` calls; their kernel-reported ns summed.
    fn phase(&mut self, case: &Case, n: u64, ingress: u32) -> Result<u64> {
        let mut ns = 0;
        for _ in 0..n {
            let pkt = case.traffic.packet(self.next, &self.cycle);
            self.next += 1;
            let (action, d) = call(self.prog, &pkt, ingress)?;
            self.check.saw(action);
            ns += d;
        }
        Ok(ns)
    }

    /// Ends timing, releasing the dataplane for [`Ended::verify`].
    fn finish(self) -> Ended {
        Ended {
            first: self.first,
            before: self.before,
            problems: self.check.problems(),
        }
    }
}

/// A stream after timing.
struct Ended {
    first: u64,
    before: [u64; STAT_COUNT as usize],
    problems: Vec<String>,
}

impl Ended {
    /// What the stream's dataplane (`dp`, the one it started on) shows now, checked against
    /// what the case claims.
    fn verify(self, case: &Case, dp: &Dataplane, s: &Settings) -> Result<Checks> {
        let Ended {
            first,
            before,
            mut problems,
        } = self;
        let after = dp.global_stats()?;
        let delta = |st: Stat| after[st as usize] - before[st as usize];
        let flow_table = verify_flow_table(case, dp, s, first, &delta, &mut problems);
        Ok(Checks {
            flow_table,
            problems,
        })
    }
}

/// Times `case` through `dp`'s load balancer and, given a second freshly loaded dataplane,
/// through its flow-table floor (`sheave_flow_floor`) on a table prepared the same way, in the
/// same trials as the empty program, so that drift affects all three alike.
pub fn run(
    case: &Case,
    dp: &mut Dataplane,
    mut floor_dp: Option<&mut Dataplane>,
    baseline: &Xdp,
    s: &Settings,
) -> Result<Outcome> {
    let mut lb = Stream::start(case, dp, Timed::Lb, s)?;
    let mut floor = match floor_dp.as_deref_mut() {
        Some(f) => Some(Stream::start(case, f, Timed::Floor, s)?),
        None => None,
    };
    // The empty program always gets the case's first packet: test_run's own work (copying the
    // packet in, setting up the context) is outside the timed region but the same size anyway.
    let base_pkt = case.traffic.packet(lb.first, &lb.cycle).into_owned();
    let base_phase = |n: u64| -> Result<u64> {
        let mut ns = 0;
        for _ in 0..n {
            ns += call(baseline, &base_pkt, s.ingress)?.1;
        }
        Ok(ns)
    };

    base_phase(s.warmup)?;
    lb.phase(case, s.warmup, s.ingress)?;
    if let Some(f) = floor.as_mut() {
        f.phase(case, s.warmup, s.ingress)?;
    }
    let per_call = |ns: u64| ns as f64 / s.calls as f64;
    let mut trials = Vec::with_capacity(s.trials);
    for t in 0..s.trials {
        let mut floor_phase = || -> Result<Option<f64>> {
            match floor.as_mut() {
                Some(f) => Ok(Some(per_call(f.phase(case, s.calls, s.ingress)?))),
                None => Ok(None),
            }
        };
        // Alternate the order, so a drift within a trial does not favour one side.
        let trial = if t % 2 == 0 {
            let baseline_ns = per_call(base_phase(s.calls)?);
            let case_ns = per_call(lb.phase(case, s.calls, s.ingress)?);
            Trial {
                floor_ns: floor_phase()?,
                case_ns,
                baseline_ns,
            }
        } else {
            let floor_ns = floor_phase()?;
            let case_ns = per_call(lb.phase(case, s.calls, s.ingress)?);
            Trial {
                baseline_ns: per_call(base_phase(s.calls)?),
                case_ns,
                floor_ns,
            }
        };
        trials.push(trial);
    }

    let (lb, floor) = (lb.finish(), floor.map(Stream::finish));
    let Checks {
        flow_table,
        problems,
    } = lb.verify(case, dp, s)?;
    let floor = match (floor, floor_dp) {
        (Some(ended), Some(f)) => Some(ended.verify(case, f, s)?),
        _ => None,
    };
    Ok(Outcome {
        trials,
        flow_table,
        problems,
        floor,
    })
}

/// What the timed calls start from.
struct Prepared {
    /// The packets the calls cycle through; empty for cases that build their packets per call.
    cycle: Vec<Vec<u8>>,
    /// Index of the first timed (or warm-up) call's packet: new-flow clients used while
    /// preparing are not used again.
    first: u64,
}

/// Sends what a case needs in place before timing, untimed: the established flows' first
/// packets, or enough new flows to fill this CPU's share of the flow table.
fn establish(case: &Case, dp: &mut Dataplane, s: &Settings) -> Result<Prepared> {
    let prog = dp.program()?;
    let first_tx = |pkt: &[u8]| -> Result<()> {
        match call(prog, pkt, s.ingress)? {
            (XDP_TX, _) => Ok(()),
            (a, _) => bail!(
                "{}: a flow's first packet got {}",
                case.name,
                action_name(a)
            ),
        }
    };
    let (cycle, first) = match case.traffic {
        Traffic::Established { proto, vip, flows } => {
            let mut cycle = Vec::new();
            for i in 0..u64::from(flows) {
                let src = cases::client(i, &vip);
                first_tx(&cases::first_packet(proto, src, vip))?;
                cycle.push(cases::later_packet(proto, src, vip));
            }
            (cycle, 0)
        }
        Traffic::SameSyn { vip } => {
            let syn = packets::tcp(cases::client(0, &vip), vip, packets::Tcp::Syn, b"");
            (vec![syn], 0)
        }
        Traffic::NewFlows {
            proto,
            vip,
            full: true,
        } => {
            // A little over the share, so that the list is full whatever the LRU's rounding.
            let fill = s.lru_share + s.lru_share / 64;
            for i in 0..fill {
                first_tx(&cases::first_packet(proto, cases::client(i, &vip), vip))?;
            }
            (Vec::new(), fill)
        }
        Traffic::Fixed { .. } | Traffic::NewFlows { .. } => (Vec::new(), 0),
    };
    Ok(Prepared { cycle, first })
}

/// Compares the global counters (and for new flows, the flow table itself) with what the case
/// claims to measure. Returns a one-line account of the flow table's part.
fn verify_flow_table(
    case: &Case,
    dp: &Dataplane,
    s: &Settings,
    first: u64,
    delta: &dyn Fn(Stat) -> u64,
    problems: &mut Vec<String>,
) -> String {
    let calls = s.case_calls();
    let (hits, misses) = (delta(Stat::FlowHit), delta(Stat::FlowMiss));
    let mut expect = |what: &str, got: u64, want: u64| {
        if got != want {
            problems.push(format!("{what}: {got}, expected {want}"));
        }
    };
    match &case.traffic {
        Traffic::Fixed { outcome, .. } => {
            expect("outcome counter", delta(*outcome), calls);
            expect("flow-table lookups", hits + misses, 0);
            "not used".into()
        }
        Traffic::Established { .. } => {
            expect("forwarded", delta(Stat::Tx), calls);
            expect("flow-table hits", hits, calls);
            expect("flow-table misses", misses, 0);
            format!("{hits}/{calls} hits")
        }
        Traffic::SameSyn { .. } => {
            expect("forwarded", delta(Stat::Tx), calls);
            expect("flow-table misses", misses, 1);
            expect("flow-table hits", hits, calls - 1);
            format!("{misses} miss, then {hits} hits")
        }
        Traffic::NewFlows { proto, vip, full } => {
            expect("forwarded", delta(Stat::Tx), calls);
            expect("flow-table misses", misses, calls);
            // The most recent flows must all be there; older ones may have been evicted, which
            // is the point of the full-table case. Half the share keeps clear of the LRU's
            // batch eviction.
            let recent = calls.min(s.lru_share / 2);
            let found = count_inserted(dp, *proto, vip, first + calls - recent..first + calls);
            expect("recent flows found in the table", found, recent);
            let mut account = format!("{misses}/{calls} misses; last {recent}: {found} found");
            if *full {
                // The oldest flows (filled first, never seen again) are what the inserts evicted:
                // evidence that the table was full.
                let oldest = calls.min(1000);
                let gone = oldest - count_inserted(dp, *proto, vip, 0..oldest);
                expect("evicted among the oldest flows", gone, oldest);
                account.push_str(&format!("; first {oldest}: {gone} evicted"));
            }
            account
        }
    }
}

/// How many of these clients' flows are in the flow table, each looked up.
fn count_inserted(
    dp: &Dataplane,
    proto: Protocol,
    vip: &std::net::SocketAddr,
    clients: std::ops::Range<u64>,
) -> u64 {
    clients
        .filter(|&i| {
            flow_key(proto, cases::client(i, vip), *vip)
                .ok()
                .and_then(|k| dp.flow(&k))
                .is_some()
        })
        .count() as u64
}

fn expected_action(t: &Traffic) -> u32 {
    match t {
        Traffic::Fixed { action, .. } => *action,
        _ => XDP_TX,
    }
}

/// Every call's action against the expected one; counts, not asserts, so that one bad call does
/// not hide how many there were.
struct ActionCheck {
    want: u32,
    wrong: u64,
    first_wrong: Option<u32>,
}

impl ActionCheck {
    fn new(want: u32) -> Self {
        ActionCheck {
            want,
            wrong: 0,
            first_wrong: None,
        }
    }

    fn saw(&mut self, action: u32) {
        if action != self.want {
            self.wrong += 1;
            self.first_wrong.get_or_insert(action);
        }
    }

    fn problems(&self) -> Vec<String> {
        match self.first_wrong {
            None => Vec::new(),
            Some(a) => vec![format!(
                "{} calls returned another action than {} (first: {})",
                self.wrong,
                action_name(self.want),
                action_name(a)
            )],
        }
    }
}

/// One BPF_PROG_TEST_RUN with repeat = 1: the program rewrites the packet, so the kernel's own
/// repeat loop would run every iteration after the first on an already encapsulated packet.
/// Returns the action and the kernel-reported run time in ns (the program's run only: copying
/// the packet in and out is outside the kernel's timer).
pub fn call(prog: &Xdp, pkt: &[u8], ingress: u32) -> Result<(u32, u64)> {
    let ctx = xdp_md(pkt.len(), ingress);
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(pkt),
            ctx_in: Some(&ctx),
            repeat: 1,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration.as_nanos() as u64))
}
