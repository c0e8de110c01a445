//! Single-packet fixtures as data: a name, a configuration file, an input packet and the ingress
//! it arrives on; the action, output packet and outcome counter expected. [`trials`] turns a
//! table of them into trials.
//!
//! Every packet ends in exactly one outcome counter, so a fixture checks them all: its own must
//! go up by one and every other outcome must stay. Fixtures whose packet changes no state (it
//! passes or drops before the flow table, or is an echo answered in place) share one loaded
//! program per configuration, and check counters as deltas while they hold it; the others (a
//! packet that reaches the scheduler writes the flow table and the next-hop cache, which would
//! change what the next fixture exercises) each get a freshly loaded program.
use lb_userspace::maps::MapStore as _;
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, OnceLock},
};

use anyhow::{Context as _, Result, ensure};
use lb_common::stats::{STAT_COUNT, Stat};
use lb_userspace::{
    config::Protocol,
    testkit::{
        lb::{
            Ingress, Lb, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, action_name, hex, mac_of,
            same_bytes,
        },
        netns::{CLIENT_MAC, LB_MAC},
        packets,
    },
};
use libtest_mimic::Trial;

use crate::{configs, trial};

/// The outcome counters: one of them counts each packet. (The others are events: flow-table
/// hits and misses, reschedules, ICMP errors sent to a backend.)
const OUTCOMES: [Stat; 19] = [
    Stat::PassNotIp,
    Stat::PassNoVip,
    Stat::PassUnparsed,
    Stat::PassFragment,
    Stat::PassNoNeigh,
    Stat::Tx,
    Stat::Redirect,
    Stat::DropNoBackend,
    Stat::DropTooBig,
    Stat::DropNoRoute,
    Stat::DropEncap,
    Stat::TxEchoReply,
    Stat::DropFragment,
    Stat::TxIcmpTooBig,
    Stat::DropBadTcpHeader,
    Stat::DropBadUdpHeader,
    Stat::DropBadIpOptions,
    Stat::DropBadIpv6Ext,
    Stat::DropSourceRoute,
];

/// Outcomes that leave no state behind in the program's maps.
const STATELESS: [Stat; 11] = [
    Stat::PassNotIp,
    Stat::PassNoVip,
    Stat::PassUnparsed,
    Stat::PassFragment,
    Stat::DropFragment,
    Stat::TxEchoReply,
    Stat::DropBadTcpHeader,
    Stat::DropBadUdpHeader,
    Stat::DropBadIpOptions,
    Stat::DropBadIpv6Ext,
    Stat::DropSourceRoute,
];

pub struct Fixture {
    pub name: String,
    /// The configuration file, `configs/<config>`.
    pub config: &'static str,
    pub input: Vec<u8>,
    pub ingress: Ingress,
    pub action: u32,
    pub output: Output,
    /// The outcome counter the packet must land in.
    pub counter: Stat,
}

/// What the program must leave in the packet buffer.
pub enum Output {
    /// The input, untouched.
    Unchanged,
    /// Not looked at: a dropped packet goes nowhere.
    Dropped,
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// The input encapsulated toward the backend the userspace simulator picks for the flow, with
    /// the outer fields that follow from the flow's hash (what `expect_forward` checks).
    Encapsulated(Forward),
}

pub struct Forward {
    pub proto: Protocol,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    /// The FIB knew the backend's MAC: the Ethernet header goes from the LB to the backend.
    /// Otherwise the kernel gets the packet to forward, with the frame's own MACs.
    pub resolved: bool,
    /// What the picked backend must be, beyond the simulator's choice.
    pub backend: Option<Backend>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    V4,
    V6,
    Is(IpAddr),
}

impl Fixture {
    /// `input` for the flow client → vip is forwarded to the simulator's pick: XDP_TX out of
    /// fx0 when it arrived there, else XDP_REDIRECT. The fixture configuration.
    pub fn forward(
        name: impl Into<String>,
        proto: Protocol,
        (client, vip): (SocketAddr, SocketAddr),
        input: Vec<u8>,
        ingress: Ingress,
    ) -> Fixture {
        let (action, counter) = forwarded(ingress);
        Fixture {
            name: name.into(),
            config: configs::FIXTURE,
            input,
            ingress,
            action,
            output: Output::Encapsulated(Forward {
                proto,
                client,
                vip,
                resolved: true,
                backend: None,
            }),
            counter,
        }
    }

    /// `input` goes to the kernel untouched, counted in `counter`; from loopback, with the
    /// fixture configuration.
    pub fn pass(name: impl Into<String>, counter: Stat, input: Vec<u8>) -> Fixture {
        Fixture {
            name: name.into(),
            config: configs::FIXTURE,
            input,
            ingress: Ingress::Lo,
            action: XDP_PASS,
            output: Output::Unchanged,
            counter,
        }
    }

    /// `input` is dropped, counted in `counter`; from loopback, with the fixture configuration.
    pub fn drop(name: impl Into<String>, counter: Stat, input: Vec<u8>) -> Fixture {
        Fixture {
            action: XDP_DROP,
            output: Output::Dropped,
            ..Fixture::pass(name, counter, input)
        }
    }

    /// From another ingress interface.
    pub fn from(self, ingress: Ingress) -> Fixture {
        Fixture { ingress, ..self }
    }

    /// A forward whose backend has no neighbour entry: encapsulated all the same, and handed to
    /// the kernel to resolve and forward.
    pub fn kernel_forwards(self) -> Fixture {
        Fixture {
            action: XDP_PASS,
            counter: Stat::PassNoNeigh,
            ..self.with_forward(|f| f.resolved = false)
        }
    }

    /// The picked backend must also be `backend` (a family, or one address).
    pub fn backend(self, backend: Backend) -> Fixture {
        self.with_forward(|f| f.backend = Some(backend))
    }

    fn with_forward(mut self, edit: impl FnOnce(&mut Forward)) -> Fixture {
        match &mut self.output {
            Output::Encapsulated(f) => edit(f),
            _ => panic!("{}: not a forward", self.name),
        }
        self
    }

    /// Whether the packet leaves the program's maps as it found them.
    fn stateless(&self) -> bool {
        STATELESS.contains(&self.counter)
    }
}

/// The action and outcome of a forward that arrived on `ingress`.
fn forwarded(ingress: Ingress) -> (u32, Stat) {
    match ingress {
        Ingress::Fx0 => (XDP_TX, Stat::Tx),
        Ingress::Lo => (XDP_REDIRECT, Stat::Redirect),
    }
}

/// The fixtures as trials.
pub fn trials(fx0: u32, fixtures: Vec<Fixture>) -> Vec<Trial> {
    fixtures
        .into_iter()
        .map(|f| {
            let name = f.name.clone();
            trial(&name, move || run(fx0, &f))
        })
        .collect()
}

fn run(fx0: u32, f: &Fixture) -> Result<()> {
    if f.stateless() {
        let lb = shared(fx0, f.config)?;
        let mut lb = lb.lock().unwrap_or_else(|e| e.into_inner());
        check(&mut lb, f)
    } else {
        check(&mut configs::load(fx0, f.config)?, f)
    }
}

type Shared = Arc<Mutex<Lb>>;

/// One loaded program per configuration for the stateless fixtures: loading one per fixture
/// would dominate their run time.
fn shared(fx0: u32, config: &'static str) -> Result<Shared> {
    static SHARED: OnceLock<Mutex<BTreeMap<&'static str, Shared>>> = OnceLock::new();
    let mut all = SHARED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(lb) = all.get(config) {
        return Ok(lb.clone());
    }
    let lb = Arc::new(Mutex::new(configs::load(fx0, config)?));
    all.insert(config, lb.clone());
    Ok(lb)
}

fn check(lb: &mut Lb, f: &Fixture) -> Result<()> {
    let before = lb.dp.global_stats()?;
    let (action, out) = lb.run(&f.input, f.ingress)?;
    ensure!(
        action == f.action,
        "action {}, expected {} (output {})",
        action_name(action),
        action_name(f.action),
        hex(&out)
    );
    match &f.output {
        Output::Unchanged => same_bytes(&out, &f.input)?,
        Output::Dropped => {}
        Output::Bytes(want) => same_bytes(&out, want)?,
        Output::Encapsulated(fw) => {
            let pick = lb.simulate(fw.proto, fw.client, fw.vip)?;
            let b = pick.backend;
            let ok = match fw.backend {
                None => true,
                Some(Backend::V4) => b.is_ipv4(),
                Some(Backend::V6) => b.is_ipv6(),
                Some(Backend::Is(a)) => b == a,
            };
            ensure!(ok, "backend {b}, expected {:?}", fw.backend.unwrap());
            let (eth_src, eth_dst) = match fw.resolved {
                true => (LB_MAC, mac_of(b)),
                false => (CLIENT_MAC, LB_MAC),
            };
            let outer_src = lb.outer_src(b, pick.hash);
            let want = packets::encapsulated(&f.input, eth_src, eth_dst, outer_src, b, pick.hash);
            same_bytes(&out, &want).with_context(|| format!("encapsulated toward {b}"))?;
        }
    }
    let after = lb.dp.global_stats()?;
    let moved: Vec<String> = OUTCOMES
        .iter()
        .map(|&s| (s, after[s as usize] - before[s as usize]))
        .filter(|&(s, n)| n != u64::from(s == f.counter))
        .map(|(s, n)| format!("{s:?} +{n}"))
        .collect();
    ensure!(
        moved.is_empty(),
        "outcome counters: {} (expected {:?} +1 and no other)",
        moved.join(", "),
        f.counter
    );
    Ok(())
}

// A new counter must be classified above: an outcome, or an event.
const _: () = assert!(STAT_COUNT == 27);
