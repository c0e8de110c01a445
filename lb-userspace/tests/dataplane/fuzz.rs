//! Fuzzing the XDP programs through BPF_PROG_TEST_RUN: random and mutated packets, each checked
//! against what an independent model says must come out.
//!
//! The model ([`Model::classify`]) parses every input with its own code, not the program's, and
//! decides what the program must do with it:
//!
//! - a well-formed TCP/UDP packet (lengths consistent: IPv4 IHL >= 5, total length between the
//!   header and the frame; IPv6 payload length within the frame, extension headers inside it; not
//!   a fragment; the L4 header complete within the IP length) whose {destination, port, protocol}
//!   is a VIP, or a well-formed ICMP error quoting a packet such a VIP sent (the quoted header and
//!   ports inside the IP length), is balanced: encapsulated toward one of the VIP's backends and
//!   sent (XDP_TX / XDP_REDIRECT), or handed to the kernel encapsulated when the next hop has no
//!   neighbour entry (XDP_PASS with changed bytes), or dropped (no backend with weight, no route).
//!   Which of these is decided by the backend the userspace simulator picks, not by the program.
//!   Anything encapsulated must have a valid outer header (Ethernet type matching the outer
//!   version; IPv4: IHL 5, valid checksum, total length = inner + 20, protocol 4/41 matching the
//!   inner version, TTL 64; IPv6: payload length = inner length, next header 4/41, hop limit 64),
//!   an outer destination that is the flow's backend (one of the VIP's), an outer source inside
//!   the configured encapsulation prefix, and the input's IP packet, Ethernet padding included,
//!   byte for byte behind it. Too big for the path once encapsulated, it is answered with a valid
//!   ICMP "fragmentation needed" / ICMPv6 "packet too big" (XDP_TX), or dropped when no error may
//!   be sent (IPv4 without DF, an ICMP error itself);
//! - an ICMP echo request to a VIP address is answered in place (XDP_TX, a valid reply);
//! - a fragment to a VIP address is dropped;
//! - everything else, including every malformed packet, passes (XDP_PASS) with its bytes
//!   unchanged: nothing that fails to parse is ever forwarded.
//!
//! Where the model cannot tell two reasonable behaviours apart (an echo request behind IPv6
//! extension headers may be answered or left to the kernel; a packet to a VIP address with a
//! broken IPv6 extension-header chain may be dropped), a [`Verdict`] allows both, and says so.
//! `fuzz/model-rejects-broken-outputs` shows that each check can fail.
//!
//! The decap program gets the same treatment ([`DecapModel`]): only a well-formed IPIP / IPv6-in-IP
//! packet (outer header valid, inner header of the announced version inside the outer packet)
//! whose inner destination is a configured VIP is decapsulated; everything else passes unchanged
//! (or is dropped, when it says IP-in-IP but the inner header is cut off).
//!
//! # Running, reproducing, keeping failures
//!
//! `cargo test -p lb-userspace --test dataplane -- fuzz/` runs the short version (the suite's);
//! `cargo xtask fuzz` the long one (release build, 1,000,000 packets by default). Environment:
//! `SHEAVE_FUZZ_SEED` (decimal or 0x-hex; default fixed, so the suite is deterministic),
//! `SHEAVE_FUZZ_ITERATIONS` (packets through the load balancer; decap gets a quarter as many),
//! `SHEAVE_FUZZ_CASE` (replay just that case index), `SHEAVE_FUZZ_KEEP_GOING=1` (report the first
//! case of each kind of failure instead of stopping at the first). Every case is generated from
//! (seed, index) alone and the checks do not depend on the program's state (the configuration
//! never changes, so a flow-table entry always names the backend the ring would pick), so a
//! failing case replays on its own. A failure prints the seed, the case index, how the input was
//! made, the input as hex, and writes it as a `.hex` file under cargo's `CARGO_TARGET_TMPDIR`
//! (`target/tmp/fuzz-failures/`); copy that file into `lb-userspace/tests/fuzz-corpus/` to keep
//! it: `fuzz/corpus` runs every corpus file as-is through both programs, and the fuzzers mutate
//! corpus files like the built-in fixture packets. The file format: hex digits, whitespace
//! ignored, `#` starts a comment line.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};
use lb_userspace::{
    config::{Config, Protocol},
    testkit::{
        decap::Decap,
        lb::{
            Ingress, Lb, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, action_name, hex, mac_of,
            same_bytes,
        },
        netns::{CLIENT_MAC, FX_MTU, LB_MAC},
        packets::{self, Tcp as F},
    },
    wire::Prefix,
};
use libtest_mimic::Trial;
use rand::{Rng, SeedableRng, rngs::SmallRng, seq::IndexedRandom};

use crate::{configs::FIXTURE, trial};

const SEED_ENV: &str = "SHEAVE_FUZZ_SEED";
const ITERATIONS_ENV: &str = "SHEAVE_FUZZ_ITERATIONS";
const CASE_ENV: &str = "SHEAVE_FUZZ_CASE";
const KEEP_GOING_ENV: &str = "SHEAVE_FUZZ_KEEP_GOING";
/// The suite's run is deterministic (the same packets every time); `cargo xtask fuzz` explores
/// with fresh seeds.
const DEFAULT_SEED: u64 = 0x5EA7_F022;
/// Packets through the load balancer in the suite's run: well under 15 s in a debug build on a
/// busy 2-core machine. The decap trial runs a quarter as many (its program is a fraction of the
/// load balancer's).
const DEFAULT_ITERATIONS: u64 = 50_000;
/// A fresh program and maps this often. Correctness does not depend on the flow table (see the
/// module docs), but a bounded history keeps a long run's cases as close as possible to a replay
/// of one case on a fresh program.
const RELOAD_EVERY: u64 = 50_000;
/// Runs shorter than this (a replayed case, a tiny smoke run) do not assert coverage.
const COVERAGE_MIN_ITERATIONS: u64 = 10_000;
/// The largest frame generated; test_run needs at least an Ethernet header.
const MAX_FRAME: usize = 1600;
const ETH_HLEN: usize = 14;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
/// How many IPv6 extension headers the program walks to find the transport header: the
/// documented limit (beyond it the kernel gets the packet untouched).
const IPV6_MAX_EXT: usize = 4;
/// TTL / hop limit of the outer header, and of echo replies.
const OUTER_TTL: u8 = 64;

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![
        trial("fuzz/lb", move || fuzz_lb(fx0, Settings::from_env()?)),
        trial("fuzz/decap", move || fuzz_decap(fx0, Settings::from_env()?)),
        trial("fuzz/corpus", move || run_corpus(fx0)),
        trial("fuzz/model-rejects-broken-outputs", move || {
            model_rejects_broken_outputs(fx0)
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Settings, per-case randomness, reporting

#[derive(Clone, Copy)]
struct Settings {
    seed: u64,
    iterations: u64,
    /// Replay only this case.
    only_case: Option<u64>,
    /// Asked for explicitly (`cargo xtask fuzz`, a replay): print a summary.
    verbose: bool,
    /// Collect failures by kind instead of stopping at the first (see [`Failures`]).
    keep_going: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let var = |name: &str| -> Result<Option<u64>> {
            match std::env::var(name) {
                Ok(s) => parse_u64(&s)
                    .map(Some)
                    .with_context(|| format!("{name}={s:?}")),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(e) => bail!("{name}: {e}"),
            }
        };
        let seed = var(SEED_ENV)?;
        let iterations = var(ITERATIONS_ENV)?;
        let only_case = var(CASE_ENV)?;
        Ok(Settings {
            seed: seed.unwrap_or(DEFAULT_SEED),
            iterations: iterations.unwrap_or(DEFAULT_ITERATIONS),
            only_case,
            verbose: seed.is_some() || iterations.is_some() || only_case.is_some(),
            keep_going: std::env::var_os(KEEP_GOING_ENV).is_some_and(|v| v != "0"),
        })
    }

    fn cases(&self, iterations: u64) -> std::ops::Range<u64> {
        match self.only_case {
            Some(c) => c..c + 1,
            None => 0..iterations,
        }
    }
}

fn parse_u64(s: &str) -> Result<u64> {
    let s = s.trim().replace('_', "");
    Ok(
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16)?,
            None => s.parse()?,
        },
    )
}

/// The generator of case `index`: a function of the seed and the index only, so any case can be
/// regenerated without running the ones before it.
fn case_rng(seed: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// One generated input.
struct Case {
    input: Vec<u8>,
    ingress: Ingress,
    /// How it was made (strategy, seed packet, mutations), for the failure report.
    origin: String,
}

fn ingress_name(i: Ingress) -> &'static str {
    match i {
        Ingress::Lo => "lo",
        Ingress::Fx0 => "fx0",
    }
}

/// The failure report: everything needed to replay the case, and a corpus file to keep it.
fn failure(
    trial: &str,
    s: &Settings,
    index: u64,
    case: &Case,
    err: anyhow::Error,
) -> anyhow::Error {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let name = format!(
        "{}-seed-{:x}-case-{index}.hex",
        trial.replace('/', "-"),
        s.seed
    );
    let path = dir.join(name);
    let mut file = format!(
        "# {trial}: seed {:#x}, case {index}, ingress {}\n# origin: {}\n",
        s.seed,
        ingress_name(case.ingress),
        case.origin
    );
    for line in format!("{err:#}").lines() {
        let _ = writeln!(file, "# {line}");
    }
    file.push_str(&hex_lines(&case.input));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, file))
        .map(|()| {
            format!(
                "saved as {}: copy it into lb-userspace/tests/fuzz-corpus/ to keep it as a \
                 regression input",
                path.display()
            )
        })
        .unwrap_or_else(|e| format!("(could not save it under {}: {e})", dir.display()));
    anyhow::anyhow!(
        "case {index} (seed {seed:#x}, ingress {ingress}) failed: {err:#}\n\
         origin: {origin}\n\
         input ({len} bytes): {hex}\n\
         replay: {SEED_ENV}={seed:#x} {CASE_ENV}={index} cargo test -p lb-userspace --test \
         dataplane -- {trial} --exact\n\
         {saved}",
        seed = s.seed,
        ingress = ingress_name(case.ingress),
        origin = case.origin,
        len = case.input.len(),
        hex = hex(&case.input),
    )
}

fn hex_lines(b: &[u8]) -> String {
    let mut s = String::new();
    for chunk in b.chunks(32) {
        s.push_str(&hex(chunk));
        s.push('\n');
    }
    s
}

/// The run's failures. Normally the first ends the run; with `SHEAVE_FUZZ_KEEP_GOING=1` the run
/// goes on and reports the first case of each distinct kind (input class and innermost error,
/// numbers aside) at the end: for triage when a change breaks several things at once.
struct Failures<'a> {
    trial: &'static str,
    settings: &'a Settings,
    /// Kind -> (how many, the first one's report).
    kinds: BTreeMap<String, (u64, String)>,
}

impl<'a> Failures<'a> {
    fn new(trial: &'static str, settings: &'a Settings) -> Failures<'a> {
        Failures {
            trial,
            settings,
            kinds: BTreeMap::new(),
        }
    }

    fn record(&mut self, class: &str, index: u64, case: &Case, e: anyhow::Error) -> Result<()> {
        let root: String = e
            .root_cause()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let kind = format!("{class}: {root}");
        if let Some((n, _)) = self.kinds.get_mut(&kind) {
            *n += 1;
            return Ok(());
        }
        let report = failure(self.trial, self.settings, index, case, e);
        if !self.settings.keep_going {
            return Err(report);
        }
        self.kinds.insert(kind, (1, format!("{report:#}")));
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        let mut s = format!("{} kinds of failure:\n", self.kinds.len());
        for (kind, (n, first)) in &self.kinds {
            let _ = writeln!(s, "\n=== {n} x {kind}\n{first}");
        }
        bail!(s)
    }
}

/// Counts of (class of input, what happened), printed after a verbose run and checked for
/// coverage: a generator that stopped reaching some path should fail loudly, not pass quietly.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, class: &str, outcome: &str) {
        *self
            .counts
            .entry(format!("{class} -> {outcome}"))
            .or_default() += 1;
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v)
            .sum()
    }

    fn require(&self, what: &[&str]) -> Result<()> {
        for w in what {
            ensure!(
                self.count(|k| k.contains(w)) > 0,
                "coverage: no case was `{w}` (the generators no longer reach it)\n{}",
                self.table()
            );
        }
        Ok(())
    }

    fn table(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.counts {
            let _ = writeln!(s, "  {v:>9}  {k}");
        }
        s
    }
}

fn summary(trial: &str, s: &Settings, n: u64, start: Instant, tally: &Tally) {
    if !s.verbose {
        return;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{trial}: {n} packets in {secs:.1} s ({:.0} packets/s), seed {:#x}\n{}",
        n as f64 / secs.max(1e-9),
        s.seed,
        tally.table()
    );
}

// ---------------------------------------------------------------------------------------------
// The model: what the fixture configuration and network say must happen to a packet

struct VipModel {
    addr: IpAddr,
    port: u16,
    proto: Protocol,
    backends: Vec<IpAddr>,
    /// Some backend has weight > 0: new flows have somewhere to go.
    schedulable: bool,
}

impl VipModel {
    fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

struct Model {
    vips: Vec<VipModel>,
    /// Addresses with at least one VIP: echo requests to them are answered, fragments dropped.
    addresses: Vec<IpAddr>,
    encap_v4: Prefix,
    encap_v6: Prefix,
}

/// Where a backend is, as the test network namespace (netns.rs) set it up.
#[derive(Debug, PartialEq, Eq)]
enum NextHop {
    /// On fx0 with a permanent neighbour entry: x.x.x.11-13.
    Neighbour,
    /// On fx0's subnet without a neighbour entry: the kernel must resolve it.
    NoNeighbour,
    NoRoute,
}

fn next_hop(backend: IpAddr) -> NextHop {
    let (on_link, host) = match backend {
        IpAddr::V4(a) => {
            let o = a.octets();
            (o[..3] == [198, 18, 1], o[3])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (s[..4] == [0x2001, 0xdb8, 1, 0], a.octets()[15])
        }
    };
    let neighbour = match backend {
        IpAddr::V4(_) => (11..=13).contains(&host),
        // netns.rs names them 2001:db8:1::11-13, i.e. hex 0x11-0x13.
        IpAddr::V6(a) => a.segments()[4..7] == [0, 0, 0] && (0x11..=0x13).contains(&host),
    };
    match (on_link, neighbour) {
        (true, true) => NextHop::Neighbour,
        (true, false) => NextHop::NoNeighbour,
        (false, _) => NextHop::NoRoute,
    }
}

/// What the program must do with one input.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Not the load balancer's business: XDP_PASS, bytes untouched.
    Untouched,
    /// For a VIP: balanced toward the flow's backend.
    Balance(Balanced),
    /// An echo request to a VIP address: answered in place.
    Echo(EchoRequest),
    /// A fragment to a VIP address: dropped.
    Drop,
}

#[derive(Clone, Copy, Debug)]
struct Balanced {
    vip: usize,
    /// The flow's client side (for an ICMP error, the quoted packet's destination).
    client: SocketAddr,
    /// IP length of the input (header and payload, not Ethernet padding).
    ip_len: usize,
    /// An ICMP error about the flow rather than the flow's own packet.
    icmp_error: bool,
}

#[derive(Clone, Copy, Debug)]
struct EchoRequest {
    v4: bool,
    /// Frame offset of the ICMP header.
    icmp_off: usize,
    /// Frame offset of the IP packet's end.
    ip_end: usize,
}

#[derive(Clone, Copy, Debug)]
struct Verdict {
    expect: Expect,
    /// Passing the packet untouched is acceptable too.
    or_untouched: bool,
    /// Dropping it is acceptable too.
    or_drop: bool,
    /// What kind of input it is, for the failure message and the coverage tally.
    class: &'static str,
}

impl Verdict {
    fn must(expect: Expect, class: &'static str) -> Verdict {
        Verdict {
            expect,
            or_untouched: false,
            or_drop: false,
            class,
        }
    }

    fn untouched(class: &'static str) -> Verdict {
        Verdict::must(Expect::Untouched, class)
    }
}

/// The layer-3 facts `transport` and `icmp` need.
struct L3 {
    v4: bool,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    /// Frame offsets of the transport header and of the IP packet's end.
    l4_off: usize,
    end: usize,
    /// IPv4 options or IPv6 extension headers present.
    extras: bool,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn v4_at(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6_at(b: &[u8], at: usize) -> IpAddr {
    let o: [u8; 16] = b[at..at + 16].try_into().unwrap();
    IpAddr::V6(Ipv6Addr::from(o))
}

fn prefix_contains(p: &Prefix, a: IpAddr) -> bool {
    a.is_ipv4() == p.addr.is_ipv4()
        && Prefix {
            addr: a,
            len: p.len,
        }
        .masked()
            == p.addr
}

impl Model {
    fn new() -> Result<Model> {
        let cfg = Config::parse(FIXTURE)?;
        let mut addresses: Vec<IpAddr> = cfg.vips.iter().map(|v| v.address).collect();
        addresses.sort();
        addresses.dedup();
        Ok(Model {
            vips: cfg
                .vips
                .iter()
                .map(|v| VipModel {
                    addr: v.address,
                    port: v.port,
                    proto: v.protocol,
                    backends: v.backends.iter().map(|b| b.address).collect(),
                    schedulable: v.backends.iter().any(|b| b.weight > 0),
                })
                .collect(),
            addresses,
            encap_v4: cfg
                .dataplane
                .encap_source_v4
                .context("the fixture configuration sets encap_source_v4")?,
            encap_v6: cfg
                .dataplane
                .encap_source_v6
                .context("the fixture configuration sets encap_source_v6")?,
        })
    }

    fn vip(&self, addr: IpAddr, port: u16, proto: u8) -> Option<usize> {
        self.vips
            .iter()
            .position(|v| v.addr == addr && v.port == port && v.proto.number() == proto)
    }

    fn is_vip_address(&self, a: IpAddr) -> bool {
        self.addresses.contains(&a)
    }

    fn addresses_of(&self, v4: bool) -> Vec<IpAddr> {
        self.addresses
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == v4)
            .collect()
    }

    fn ports_of(&self, addr: IpAddr) -> Vec<u16> {
        self.vips
            .iter()
            .filter(|v| v.addr == addr)
            .map(|v| v.port)
            .collect()
    }

    /// What must happen to frame `f`.
    fn classify(&self, f: &[u8]) -> Verdict {
        if f.len() < ETH_HLEN {
            return Verdict::untouched("runt");
        }
        match be16(f, 12) {
            ETH_P_IP => self.classify_v4(f),
            ETH_P_IPV6 => self.classify_v6(f),
            _ => Verdict::untouched("not-ip"),
        }
    }

    fn classify_v4(&self, f: &[u8]) -> Verdict {
        let ip = &f[ETH_HLEN..];
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return Verdict::untouched("malformed-ipv4-header");
        }
        let ihl = (ip[0] & 0x0F) as usize * 4;
        let tot = be16(ip, 2) as usize;
        if ihl < 20 || tot < ihl || tot > ip.len() {
            return Verdict::untouched("malformed-ipv4-lengths");
        }
        let dst = v4_at(ip, 16);
        if be16(ip, 6) & 0x3FFF != 0 {
            return self.fragment(dst);
        }
        self.transport(
            f,
            L3 {
                v4: true,
                src: v4_at(ip, 12),
                dst,
                proto: ip[9],
                l4_off: ETH_HLEN + ihl,
                end: ETH_HLEN + tot,
                extras: ihl > 20,
            },
        )
    }

    fn classify_v6(&self, f: &[u8]) -> Verdict {
        let ip = &f[ETH_HLEN..];
        if ip.len() < 40 || ip[0] >> 4 != 6 {
            return Verdict::untouched("malformed-ipv6-header");
        }
        let end = 40 + be16(ip, 4) as usize;
        if end > ip.len() {
            return Verdict::untouched("malformed-ipv6-length");
        }
        let dst = v6_at(ip, 24);
        // A broken extension-header chain is malformed: untouched, but a packet to a VIP address
        // may also be dropped (the program may read the chain as leading to a fragment header,
        // and the kernel would drop such a packet anyway).
        let broken = Verdict {
            or_drop: self.is_vip_address(dst),
            ..Verdict::untouched("malformed-ipv6-extension-headers")
        };
        let (mut next, mut off, mut walked) = (ip[6], 40, 0);
        while matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS) {
            if walked == IPV6_MAX_EXT {
                return Verdict::untouched("ipv6-too-many-extension-headers");
            }
            if off + 2 > end || off + (ip[off + 1] as usize + 1) * 8 > end {
                return broken;
            }
            next = ip[off];
            off += (ip[off + 1] as usize + 1) * 8;
            walked += 1;
        }
        if next == IPPROTO_FRAGMENT {
            return if off + 8 <= end {
                self.fragment(dst)
            } else {
                broken
            };
        }
        self.transport(
            f,
            L3 {
                v4: false,
                src: v6_at(ip, 8),
                dst,
                proto: next,
                l4_off: ETH_HLEN + off,
                end: ETH_HLEN + end,
                extras: walked > 0,
            },
        )
    }

    fn fragment(&self, dst: IpAddr) -> Verdict {
        if self.is_vip_address(dst) {
            Verdict::must(Expect::Drop, "fragment-to-vip-address")
        } else {
            Verdict::untouched("fragment")
        }
    }

    fn transport(&self, f: &[u8], l3: L3) -> Verdict {
        let l4 = &f[l3.l4_off..l3.end];
        let min = match l3.proto {
            IPPROTO_TCP => 20,
            IPPROTO_UDP => 8,
            IPPROTO_ICMP if l3.v4 => return self.icmp(f, &l3),
            IPPROTO_ICMPV6 if !l3.v4 => return self.icmp(f, &l3),
            _ => return Verdict::untouched("other-protocol"),
        };
        if l4.len() < min {
            return Verdict::untouched("malformed-l4-truncated");
        }
        let (sport, dport) = (be16(l4, 0), be16(l4, 2));
        match self.vip(l3.dst, dport, l3.proto) {
            Some(vip) => Verdict::must(
                Expect::Balance(Balanced {
                    vip,
                    client: SocketAddr::new(l3.src, sport),
                    ip_len: l3.end - ETH_HLEN,
                    icmp_error: false,
                }),
                if l3.proto == IPPROTO_TCP {
                    "tcp-to-vip"
                } else {
                    "udp-to-vip"
                },
            ),
            None => Verdict::untouched("tcp-udp-not-a-vip"),
        }
    }

    fn icmp(&self, f: &[u8], l3: &L3) -> Verdict {
        let m = &f[l3.l4_off..l3.end];
        if m.len() < 8 {
            return Verdict::untouched("malformed-icmp-truncated");
        }
        let (echo, error) = if l3.v4 {
            (m[0] == 8, matches!(m[0], 3 | 11))
        } else {
            (m[0] == 128, matches!(m[0], 1..=3))
        };
        if echo {
            if !self.is_vip_address(l3.dst) {
                return Verdict::untouched("echo-not-to-vip-address");
            }
            if l3.v4 && l3.extras {
                // Documented: the program leaves IPv4 echo requests with options to the kernel.
                return Verdict::untouched("echo-to-vip-address-with-ipv4-options");
            }
            return Verdict {
                expect: Expect::Echo(EchoRequest {
                    v4: l3.v4,
                    icmp_off: l3.l4_off,
                    ip_end: l3.end,
                }),
                // Answering past IPv6 extension headers (a routing header, say) is debatable;
                // either answer is fine.
                or_untouched: l3.extras,
                or_drop: false,
                class: "echo-to-vip-address",
            };
        }
        if !error {
            return Verdict::untouched("icmp-other");
        }
        // The quoted packet: the start of what the VIP sent (source VIP, destination client). Its
        // IP header and its ports must lie inside this packet's IP length.
        let q = &m[8..];
        let (qsrc, qdst, qproto, ports) = if l3.v4 {
            if q.len() < 20 || q[0] >> 4 != 4 || (q[0] & 0x0F) < 5 {
                return Verdict::untouched("malformed-icmp-error-quote");
            }
            (v4_at(q, 12), v4_at(q, 16), q[9], (q[0] & 0x0F) as usize * 4)
        } else {
            if q.len() < 40 || q[0] >> 4 != 6 {
                return Verdict::untouched("malformed-icmp-error-quote");
            }
            (v6_at(q, 8), v6_at(q, 24), q[6], 40)
        };
        if !matches!(qproto, IPPROTO_TCP | IPPROTO_UDP) {
            return Verdict::untouched("icmp-error-about-other-protocol");
        }
        if q.len() < ports + 4 {
            return Verdict::untouched("malformed-icmp-error-quote-ports");
        }
        let (qsport, qdport) = (be16(q, ports), be16(q, ports + 2));
        match self.vip(qsrc, qsport, qproto) {
            Some(vip) => Verdict::must(
                Expect::Balance(Balanced {
                    vip,
                    client: SocketAddr::new(qdst, qdport),
                    ip_len: l3.end - ETH_HLEN,
                    icmp_error: true,
                }),
                "icmp-error-about-vip-flow",
            ),
            None => Verdict::untouched("icmp-error-not-about-a-vip"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking the load balancer's output against the model

/// What happened to a packet, for the tally.
fn outcome_name(action: u32, changed: bool) -> &'static str {
    match (action, changed) {
        (XDP_PASS, false) => "pass",
        (XDP_PASS, true) => "pass-encapsulated",
        (XDP_TX, _) => "tx",
        (XDP_REDIRECT, _) => "redirect",
        (XDP_DROP, _) => "drop",
        _ => "other",
    }
}

struct LbChecker {
    fx0: u32,
    lb: Lb,
    model: Model,
}

impl LbChecker {
    fn new(fx0: u32) -> Result<LbChecker> {
        Ok(LbChecker {
            fx0,
            lb: Lb::with_config(fx0, FIXTURE)?,
            model: Model::new()?,
        })
    }

    fn reload(&mut self) -> Result<()> {
        self.lb = Lb::with_config(self.fx0, FIXTURE)?;
        Ok(())
    }

    /// Run `input` and check the result; returns the (class, outcome) to tally.
    fn check(&mut self, input: &[u8], ingress: Ingress) -> Result<(&'static str, String)> {
        let v = self.model.classify(input);
        let (action, out) = self.lb.run(input, ingress)?;
        let outcome = outcome_name(action, out != input);
        let also_allowed = (v.or_untouched && action == XDP_PASS && out == input)
            || (v.or_drop && action == XDP_DROP);
        let result = if also_allowed {
            Ok(outcome.to_string())
        } else {
            self.check_expect(&v, input, ingress, action, &out)
        };
        result
            .map(|o| (v.class, o))
            .with_context(|| format!("input class `{}`, expected {v:?}", v.class))
    }

    fn check_expect(
        &mut self,
        v: &Verdict,
        input: &[u8],
        ingress: Ingress,
        action: u32,
        out: &[u8],
    ) -> Result<String> {
        match v.expect {
            Expect::Untouched => {
                ensure!(
                    action == XDP_PASS,
                    "{} for a packet that must pass untouched",
                    action_name(action)
                );
                same_bytes(out, input).context("passed, but modified")?;
                Ok("pass".into())
            }
            Expect::Drop => {
                ensure!(
                    action == XDP_DROP,
                    "{}, expected XDP_DROP",
                    action_name(action)
                );
                Ok("drop".into())
            }
            Expect::Echo(e) => {
                check_echo_reply(input, out, action, e)?;
                Ok("echo-reply".into())
            }
            Expect::Balance(b) => self.check_balanced(input, ingress, action, out, b),
        }
    }

    fn check_balanced(
        &mut self,
        input: &[u8],
        ingress: Ingress,
        action: u32,
        out: &[u8],
        b: Balanced,
    ) -> Result<String> {
        let vip = &self.model.vips[b.vip];
        let drop = |why: &str| -> Result<String> {
            ensure!(
                action == XDP_DROP,
                "{}, expected XDP_DROP ({why})",
                action_name(action)
            );
            Ok(format!("drop-{why}"))
        };
        if !vip.schedulable {
            return drop("no-backend");
        }
        // The ring's choice. The configuration never changes during a run, so a flow-table
        // entry, which the program prefers, always names this same backend.
        let pick = self.lb.simulate(vip.proto, b.client, vip.socket())?;
        ensure!(
            vip.backends.contains(&pick.backend),
            "the simulator picked {}, not a backend of {}",
            pick.backend,
            vip.socket()
        );
        // The route comes first (no route: dropped whatever the size), then the MTU, then the
        // neighbour, as the kernel's FIB lookup answers.
        let hop = next_hop(pick.backend);
        if hop == NextHop::NoRoute {
            return drop("no-route");
        }
        let outer_len = if pick.backend.is_ipv4() { 20 } else { 40 };
        if b.ip_len + outer_len > FX_MTU {
            return check_too_big(input, action, out, b, FX_MTU - outer_len);
        }
        let (want_action, eth_src, eth_dst, name) = match hop {
            NextHop::NoRoute => unreachable!(),
            // Handed to the kernel to resolve the neighbour: still addressed to this host.
            NextHop::NoNeighbour => (
                XDP_PASS,
                input[6..12].try_into().unwrap(),
                input[0..6].try_into().unwrap(),
                "pass-encapsulated",
            ),
            NextHop::Neighbour => match ingress {
                Ingress::Fx0 => (XDP_TX, LB_MAC, mac_of(pick.backend), "tx"),
                Ingress::Lo => (XDP_REDIRECT, LB_MAC, mac_of(pick.backend), "redirect"),
            },
        };
        ensure!(
            action == want_action,
            "{}, expected {} toward {}",
            action_name(action),
            action_name(want_action),
            pick.backend
        );
        let (outer_src, outer_dst) = check_encapsulation(
            input,
            out,
            b.ip_len,
            &vip.backends,
            (&self.model.encap_v4, &self.model.encap_v6),
        )?;
        ensure!(
            out[..6] == eth_dst && out[6..12] == eth_src,
            "Ethernet addresses {} -> {}, expected {} -> {}",
            hex(&out[6..12]),
            hex(&out[..6]),
            hex(&eth_src),
            hex(&eth_dst)
        );
        ensure!(
            outer_dst == pick.backend,
            "sent to {outer_dst}, but the flow's backend is {}",
            pick.backend
        );
        let want_src = self.lb.outer_src(pick.backend, pick.hash);
        ensure!(
            outer_src == want_src,
            "outer source {outer_src}, expected {want_src} for flow hash {:#x}",
            pick.hash
        );
        // Everything else (TOS / traffic class, DF, flow label) byte for byte.
        let want =
            packets::encapsulated(input, eth_src, eth_dst, want_src, pick.backend, pick.hash);
        same_bytes(out, &want)?;
        Ok(name.into())
    }
}

/// A packet for a VIP that would exceed the MTU toward its backend once encapsulated: its sender
/// gets ICMP "fragmentation needed" / ICMPv6 "packet too big" advertising `mtu` (what fits
/// inside our outer header), sent back with XDP_TX, so its path MTU discovery works. Not for an
/// ICMP error (an error never answers an error, RFC 1122 3.2.2) nor an IPv4 packet without DF (a
/// router would fragment it; a load balancer cannot): those are dropped. An IPv4 packet with
/// options may be answered or dropped.
fn check_too_big(input: &[u8], action: u32, out: &[u8], b: Balanced, mtu: usize) -> Result<String> {
    let ip = &input[ETH_HLEN..];
    let v4 = ip[0] >> 4 == 4;
    let may_answer = !b.icmp_error && (!v4 || be16(ip, 6) & 0x4000 != 0);
    if action == XDP_DROP && (!may_answer || (v4 && ip[0] != 0x45)) {
        return Ok("drop-too-big".into());
    }
    ensure!(
        may_answer,
        "{} for a packet too big to forward, expected XDP_DROP (no ICMP error may be sent: {})",
        action_name(action),
        if b.icmp_error {
            "it is an ICMP error itself"
        } else {
            "IPv4 without DF"
        }
    );
    ensure!(
        action == XDP_TX,
        "{} for a packet too big to forward, expected XDP_TX with an ICMP error",
        action_name(action)
    );
    // Ethernet: back where it came from.
    ensure!(
        out.len() >= ETH_HLEN && out[..6] == input[6..12] && out[6..12] == input[..6],
        "ICMP error's Ethernet header {} (input's {})",
        hex(&out[..out.len().min(14)]),
        hex(&input[..14])
    );
    let o = &out[ETH_HLEN..];
    // The quote: the offending packet's IP header and 8 bytes, as RFC 792 asks; for IPv6 as much
    // as fits, at least that much.
    let (hdr, quote_min) = if v4 { (20, 28) } else { (40, 48) };
    let (src, dst, msg) = if v4 {
        ensure!(
            be16(out, 12) == ETH_P_IP && o.len() >= 20 && o[0] == 0x45,
            "ICMP error: not an IPv4 header with IHL 5: {}",
            hex(o)
        );
        ensure!(
            packets::checksum(&o[..20]) == 0,
            "ICMP error: IPv4 header checksum invalid"
        );
        let tot = be16(o, 2) as usize;
        ensure!(
            tot == o.len(),
            "ICMP error: total length {tot}, {} bytes after Ethernet",
            o.len()
        );
        ensure!(o[9] == IPPROTO_ICMP, "ICMP error: protocol {}", o[9]);
        ensure!(
            be16(o, 6) & 0x3FFF == 0,
            "ICMP error: IPv4 header says fragment"
        );
        ensure!(o[8] > 0, "ICMP error: TTL 0");
        let m = &o[20..];
        ensure!(
            m.len() >= 8 && m[0] == 3 && m[1] == 4,
            "ICMP error: not type 3 code 4 (fragmentation needed): {}",
            hex(m)
        );
        ensure!(
            packets::checksum(m) == 0,
            "ICMP error: ICMP checksum invalid"
        );
        let adv = be16(m, 6) as usize;
        ensure!(
            adv == mtu,
            "ICMP error advertises MTU {adv}, the path allows {mtu}"
        );
        (v4_at(o, 12), v4_at(o, 16), m)
    } else {
        ensure!(
            be16(out, 12) == ETH_P_IPV6 && o.len() >= 40 && o[0] >> 4 == 6,
            "ICMP error: not an IPv6 header: {}",
            hex(o)
        );
        let payload = be16(o, 4) as usize;
        ensure!(
            payload + 40 == o.len(),
            "ICMP error: payload length {payload}, {} bytes after Ethernet",
            o.len()
        );
        ensure!(o[6] == IPPROTO_ICMPV6, "ICMP error: next header {}", o[6]);
        ensure!(o[7] > 0, "ICMP error: hop limit 0");
        let m = &o[40..];
        ensure!(
            m.len() >= 8 && m[0] == 2 && m[1] == 0,
            "ICMP error: not ICMPv6 type 2 code 0 (packet too big): {}",
            hex(m)
        );
        ensure!(
            icmp_checksum_ok(out, false, ETH_HLEN + 40, out.len()),
            "ICMP error: ICMPv6 checksum invalid"
        );
        let adv = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        ensure!(
            adv == mtu,
            "ICMP error advertises MTU {adv}, the path allows {mtu}"
        );
        ensure!(
            o.len() <= 1280,
            "ICMPv6 error of {} bytes exceeds the minimum MTU",
            o.len()
        );
        (v6_at(o, 8), v6_at(o, 24), m)
    };
    // From the VIP (the packet's destination) to the packet's source.
    let (in_src, in_dst) = if v4 {
        (v4_at(ip, 12), v4_at(ip, 16))
    } else {
        (v6_at(ip, 8), v6_at(ip, 24))
    };
    ensure!(
        src == in_dst && dst == in_src,
        "ICMP error {src} -> {dst}, expected {in_dst} -> {in_src}"
    );
    let quote = &msg[8..];
    ensure!(
        quote.len() >= quote_min && quote.len() <= b.ip_len && quote == &ip[..quote.len()],
        "ICMP error quotes {} bytes that are not the start of the packet (at least {hdr} + 8 \
         expected): {}",
        quote.len(),
        hex(quote)
    );
    Ok("icmp-too-big".into())
}

/// The invariants of an encapsulated packet, checked field by field so a failure names the
/// field; returns the outer source and destination.
fn check_encapsulation(
    input: &[u8],
    out: &[u8],
    inner_len: usize,
    backends: &[IpAddr],
    (prefix_v4, prefix_v6): (&Prefix, &Prefix),
) -> Result<(IpAddr, IpAddr)> {
    ensure!(out.len() >= ETH_HLEN + 20, "output of {} bytes", out.len());
    let inner_v4 = input[ETH_HLEN] >> 4 == 4;
    let inner_proto = if inner_v4 { IPPROTO_IPIP } else { IPPROTO_IPV6 };
    let outer = &out[ETH_HLEN..];
    let (outer_len, src, dst) = match be16(out, 12) {
        ETH_P_IP => {
            ensure!(outer[0] == 0x45, "outer IPv4 version/IHL {:#04x}", outer[0]);
            ensure!(
                packets::checksum(&outer[..20]) == 0,
                "outer IPv4 header checksum invalid: {}",
                hex(&outer[..20])
            );
            let tot = be16(outer, 2) as usize;
            ensure!(
                tot == inner_len + 20,
                "outer total length {tot}, inner IP length {inner_len}"
            );
            ensure!(
                be16(outer, 6) & 0x3FFF == 0,
                "outer header says fragment: {:#06x}",
                be16(outer, 6)
            );
            ensure!(outer[8] == OUTER_TTL, "outer TTL {}", outer[8]);
            ensure!(
                outer[9] == inner_proto,
                "outer protocol {} for an IPv{} inner packet",
                outer[9],
                if inner_v4 { 4 } else { 6 }
            );
            (20, v4_at(outer, 12), v4_at(outer, 16))
        }
        ETH_P_IPV6 => {
            ensure!(out.len() >= ETH_HLEN + 40, "output of {} bytes", out.len());
            ensure!(outer[0] >> 4 == 6, "outer IPv6 version {}", outer[0] >> 4);
            let payload = be16(outer, 4) as usize;
            ensure!(
                payload == inner_len,
                "outer payload length {payload}, inner IP length {inner_len}"
            );
            ensure!(
                outer[6] == inner_proto,
                "outer next header {} for an IPv{} inner packet",
                outer[6],
                if inner_v4 { 4 } else { 6 }
            );
            ensure!(outer[7] == OUTER_TTL, "outer hop limit {}", outer[7]);
            (40, v6_at(outer, 8), v6_at(outer, 24))
        }
        t => bail!("encapsulated with Ethernet type {t:#06x}"),
    };
    ensure!(
        backends.contains(&dst),
        "outer destination {dst} is not a backend of this VIP ({backends:?})"
    );
    let prefix = if src.is_ipv4() { prefix_v4 } else { prefix_v6 };
    ensure!(
        prefix_contains(prefix, src),
        "outer source {src} outside the encapsulation prefix {prefix}"
    );
    ensure!(
        out[ETH_HLEN + outer_len..] == input[ETH_HLEN..],
        "the inner packet (and padding) is not the input's IP packet:\n got: {}\nwant: {}",
        hex(&out[ETH_HLEN + outer_len..]),
        hex(&input[ETH_HLEN..])
    );
    Ok((src, dst))
}

/// Whether the ICMP/ICMPv6 message between `off` and `end` has a valid checksum (for ICMPv6
/// with the pseudo-header of the IPv6 header's addresses).
fn icmp_checksum_ok(f: &[u8], v4: bool, off: usize, end: usize) -> bool {
    if v4 {
        return packets::checksum(&f[off..end]) == 0;
    }
    let mut data = Vec::with_capacity(40 + end - off);
    data.extend_from_slice(&f[ETH_HLEN + 8..ETH_HLEN + 40]);
    data.extend_from_slice(&((end - off) as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    data.extend_from_slice(&f[off..end]);
    packets::checksum(&data) == 0
}

fn check_echo_reply(input: &[u8], out: &[u8], action: u32, e: EchoRequest) -> Result<()> {
    ensure!(
        action == XDP_TX,
        "{} for an echo request to a VIP address, expected XDP_TX (a reply)",
        action_name(action)
    );
    ensure!(out.len() == input.len(), "reply of {} bytes", out.len());
    ensure!(
        out[..6] == input[6..12] && out[6..12] == input[..6] && out[12..14] == input[12..14],
        "reply's Ethernet header {} (request {})",
        hex(&out[..14]),
        hex(&input[..14])
    );
    let (i, o) = (&input[ETH_HLEN..], &out[ETH_HLEN..]);
    if e.v4 {
        ensure!(
            o[12..16] == i[16..20] && o[16..20] == i[12..16],
            "reply addresses not swapped"
        );
        ensure!(o[8] == OUTER_TTL, "reply TTL {}", o[8]);
        ensure!(
            packets::checksum(&o[..20]) == 0,
            "reply IPv4 header checksum invalid"
        );
        ensure!(
            o[..8] == i[..8] && o[9] == i[9],
            "reply IPv4 header changed beyond addresses, TTL and checksum"
        );
    } else {
        ensure!(
            o[8..24] == i[24..40] && o[24..40] == i[8..24],
            "reply addresses not swapped"
        );
        ensure!(o[7] == OUTER_TTL, "reply hop limit {}", o[7]);
        ensure!(
            o[..7] == i[..7] && out[ETH_HLEN + 40..e.icmp_off] == input[ETH_HLEN + 40..e.icmp_off],
            "reply IPv6 header changed beyond addresses and hop limit"
        );
    }
    let reply_type = if e.v4 { 0 } else { 129 };
    ensure!(
        out[e.icmp_off] == reply_type,
        "reply ICMP type {}",
        out[e.icmp_off]
    );
    ensure!(
        out[e.icmp_off + 1] == input[e.icmp_off + 1]
            && out[e.icmp_off + 4..] == input[e.icmp_off + 4..],
        "reply ICMP code, identifier, sequence, data or padding changed"
    );
    // An incremental update keeps a valid checksum valid (and an invalid one invalid: the client
    // drops that reply as the kernel would have dropped the request).
    ensure!(
        icmp_checksum_ok(out, e.v4, e.icmp_off, e.ip_end)
            == icmp_checksum_ok(input, e.v4, e.icmp_off, e.ip_end),
        "reply ICMP checksum validity differs from the request's"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inputs: fixture packets (seeds), the corpus, random packets and mutations

struct Seed {
    name: String,
    bytes: Vec<u8>,
}

fn client_for(vip: IpAddr, port: u16) -> SocketAddr {
    let ip: IpAddr = if vip.is_ipv4() {
        Ipv4Addr::new(198, 18, 0, 10).into()
    } else {
        "2001:db8::10".parse::<Ipv6Addr>().unwrap().into()
    };
    SocketAddr::new(ip, port)
}

fn router_for(v4: bool) -> IpAddr {
    if v4 {
        Ipv4Addr::new(198, 18, 0, 1).into()
    } else {
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().into()
    }
}

/// A frame from the client's MAC to the LB's: Ethernet, an IP header (IHL 5 / no extension
/// headers) and `payload` as protocol `proto`; ICMP/ICMPv6 checksums are filled in.
fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut payload = payload.to_vec();
    let mut f = Vec::with_capacity(ETH_HLEN + 40 + payload.len());
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if proto == IPPROTO_ICMP && payload.len() >= 4 {
                payload[2..4].copy_from_slice(&[0, 0]);
                let ck = packets::checksum(&payload);
                payload[2..4].copy_from_slice(&ck.to_be_bytes());
            }
            f.extend_from_slice(&ETH_P_IP.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            h[6] = 0x40;
            h[8] = packets::TTL;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let ck = packets::checksum(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            f.push(proto);
            f.push(packets::TTL);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed address families"),
    }
    f.extend_from_slice(&payload);
    if proto == IPPROTO_ICMPV6 {
        set_icmpv6_checksum(&mut f, ETH_HLEN + 40);
    }
    f
}

/// Fill in the ICMPv6 checksum of the message at `off` up to the IP payload's end.
fn set_icmpv6_checksum(f: &mut [u8], off: usize) {
    let end = (ETH_HLEN + 40 + be16(f, ETH_HLEN + 4) as usize).min(f.len());
    if off + 4 > end {
        return;
    }
    f[off + 2..off + 4].copy_from_slice(&[0, 0]);
    let mut data = Vec::with_capacity(40 + end - off);
    data.extend_from_slice(&f[ETH_HLEN + 8..ETH_HLEN + 40]);
    data.extend_from_slice(&((end - off) as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    data.extend_from_slice(&f[off..end]);
    let ck = packets::checksum(&data);
    f[off + 2..off + 4].copy_from_slice(&ck.to_be_bytes());
}

/// An ICMP error from a router about a packet the VIP sent to `client`: IPv4 "fragmentation
/// needed" quoting the IP header and 8 bytes (RFC 792), or IPv6 "packet too big" quoting the
/// whole (small) packet (RFC 4443).
fn icmp_error_about(vip: &VipModel, client: SocketAddr) -> Vec<u8> {
    let reply = match vip.proto {
        Protocol::Tcp => packets::tcp(vip.socket(), client, F::Ack, b"response"),
        Protocol::Udp => packets::udp(vip.socket(), client, b"answer"),
    };
    let quoted = &reply[ETH_HLEN..];
    let v4 = vip.addr.is_ipv4();
    let mut m = if v4 {
        vec![3, 4, 0, 0, 0, 0, 0x05, 0x78] // next-hop MTU 1400
    } else {
        vec![2, 0, 0, 0, 0, 0, 0x05, 0x00] // MTU 1280
    };
    m.extend_from_slice(if v4 { &quoted[..28] } else { quoted });
    let proto = if v4 { IPPROTO_ICMP } else { IPPROTO_ICMPV6 };
    ip_frame(router_for(v4), vip.addr, proto, &m)
}

/// The fixture packets every fuzz run starts from: each VIP's traffic in several shapes, packets
/// at the MTU boundary for both outer families, ICMP errors and echo requests, fragments, and
/// traffic that is not for a VIP.
fn builtin_seeds(model: &Model) -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| seeds.push(Seed { name, bytes });
    for vip in &model.vips {
        let v = vip.socket();
        let c = client_for(vip.addr, 40000);
        let name = |what: &str| format!("{} {v} {what}", vip.proto);
        let v4 = vip.addr.is_ipv4();
        // IP + TCP/UDP header sizes, to size payloads for an exact IP length.
        let overhead = if v4 { 20 } else { 40 } + if vip.proto == Protocol::Tcp { 20 } else { 8 };
        let with_payload = |p: &[u8]| match vip.proto {
            Protocol::Tcp => packets::tcp(c, v, F::Ack, p),
            Protocol::Udp => packets::udp(c, v, p),
        };
        match vip.proto {
            Protocol::Tcp => {
                add(name("syn"), packets::tcp(c, v, F::Syn, b""));
                add(
                    name("ack"),
                    packets::tcp(c, v, F::Ack, b"GET / HTTP/1.1\r\n\r\n"),
                );
                add(name("fin"), packets::tcp(c, v, F::Fin, b""));
                add(name("rst"), packets::tcp(c, v, F::Rst, b""));
            }
            Protocol::Udp => add(name("query"), packets::udp(c, v, b"query")),
        }
        let mut padded = with_payload(b"x");
        padded.resize(padded.len().max(60), 0);
        add(name("padded to 60 bytes"), padded);
        // Either side of the MTU once encapsulated, for an IPv6 (40) and an IPv4 (20) outer
        // header.
        for ip_len in [FX_MTU - 40, FX_MTU - 39, FX_MTU - 20, FX_MTU - 19] {
            add(
                name(&format!("ip length {ip_len}")),
                with_payload(&vec![0x5A; ip_len - overhead]),
            );
        }
        let plain = with_payload(b"options");
        if v4 {
            // 8 bytes of options: two NOPs, then end of options.
            let mut p = plain[..34].to_vec();
            p.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
            p.extend_from_slice(&plain[34..]);
            p[14] = 0x47;
            let tot = be16(&p, 16) + 8;
            p[16..18].copy_from_slice(&tot.to_be_bytes());
            packets::fix_ipv4_checksum(&mut p);
            add(name("ipv4 options"), p);
        } else {
            // A hop-by-hop header (PadN) and a destination options header.
            let mut p = plain[..54].to_vec();
            let l4 = p[20];
            p[20] = IPPROTO_HOPOPTS;
            p.extend_from_slice(&[IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
            p.extend_from_slice(&[l4, 0, 1, 4, 0, 0, 0, 0]);
            p.extend_from_slice(&plain[54..]);
            let len = be16(&p, 18) + 16;
            p[18..20].copy_from_slice(&len.to_be_bytes());
            add(name("ipv6 extension headers"), p);
        }
        add(name("icmp error about it"), icmp_error_about(vip, c));
    }
    for &a in &model.addresses {
        let v4 = a.is_ipv4();
        let c = client_for(a, 0).ip();
        add(format!("echo request to {a}"), packets::icmp_echo(c, a));
        let (tcp_vip, frag) = {
            let p = packets::tcp(
                SocketAddr::new(c, 40000),
                SocketAddr::new(a, 80),
                F::Syn,
                b"",
            );
            let mut f = p.clone();
            if v4 {
                f[20] |= 0x20;
                packets::fix_ipv4_checksum(&mut f);
            } else {
                f = p[..54].to_vec();
                f[20] = IPPROTO_FRAGMENT;
                f.extend_from_slice(&[IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 42]);
                f.extend_from_slice(&p[54..]);
                let len = be16(&f, 18) + 8;
                f[18..20].copy_from_slice(&len.to_be_bytes());
            }
            (p, f)
        };
        add(format!("fragment to {a}"), frag);
        let mut other_port = tcp_vip;
        let at = if v4 { 36 } else { 56 };
        other_port[at..at + 2].copy_from_slice(&22u16.to_be_bytes());
        add(format!("tcp to {a}:22"), other_port);
    }
    for (src, dst) in [
        ("198.18.0.10:40000", "198.18.100.9:80"),
        ("[2001:db8::10]:40000", "[2001:db8:100::9]:80"),
    ] {
        let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
        add(format!("tcp to {d}"), packets::tcp(s, d, F::Syn, b""));
        add(format!("udp to {d}"), packets::udp(s, d, b"not for us"));
        add(
            format!("echo request to {}", d.ip()),
            packets::icmp_echo(s.ip(), d.ip()),
        );
    }
    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xFF; 6]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 198, 18, 100, 1]);
    arp.resize(60, 0);
    add("arp request".into(), arp);
    seeds
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

/// Every `*.hex` file of the corpus, sorted by name.
fn load_corpus() -> Result<Vec<Seed>> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.retain(|p| p.extension().is_some_and(|x| x == "hex"));
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)?;
            let bytes = parse_hex(&text).with_context(|| format!("{}", p.display()))?;
            ensure!(
                bytes.len() >= ETH_HLEN,
                "{}: {} bytes, less than an Ethernet header",
                p.display(),
                bytes.len()
            );
            let name = format!("corpus {}", p.file_name().unwrap().to_string_lossy());
            Ok(Seed { name, bytes })
        })
        .collect()
}

/// Hex digits; whitespace ignored; a line starting with `#` is a comment.
fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    ensure!(
        digits.len().is_multiple_of(2),
        "an odd number of hex digits"
    );
    digits
        .chunks(2)
        .map(|d| {
            let s = std::str::from_utf8(d)?;
            u8::from_str_radix(s, 16).with_context(|| format!("{s:?} is not a hex byte"))
        })
        .collect()
}

/// Makes the cases: 55% mutated seeds, 40% random packets with random header fields (often
/// addressed to a VIP, often with consistent lengths so they get past parsing), 5% random bytes.
struct Generator<'a> {
    model: &'a Model,
    seeds: &'a [Seed],
}

impl Generator<'_> {
    fn case(&self, seed: u64, index: u64) -> Case {
        let mut rng = case_rng(seed, index);
        let ingress = if rng.random_bool(0.5) {
            Ingress::Fx0
        } else {
            Ingress::Lo
        };
        let roll = rng.random_range(0..100);
        let (input, origin) = if roll < 55 {
            self.mutated(&mut rng)
        } else if roll < 95 {
            let mut desc = String::from("random packet:");
            let p = self.random_packet(&mut rng, &mut desc);
            (p, desc)
        } else {
            self.random_bytes(&mut rng)
        };
        Case {
            input: clamp_frame(input),
            ingress,
            origin,
        }
    }

    fn mutated(&self, rng: &mut SmallRng) -> (Vec<u8>, String) {
        let seed = self.seeds.choose(rng).expect("seeds");
        let mut p = seed.bytes.clone();
        let mut desc = format!("seed `{}`, mutations:", seed.name);
        // Mostly one or two mutations: a packet that is almost right probes each check alone.
        let n = *[1, 1, 1, 2, 2, 3, 4].choose(rng).unwrap();
        for _ in 0..n {
            mutate(rng, self.model, &mut p, &mut desc);
        }
        (p, desc)
    }

    fn random_bytes(&self, rng: &mut SmallRng) -> (Vec<u8>, String) {
        let len = rng.random_range(ETH_HLEN..=MAX_FRAME);
        let mut p = vec![0u8; len];
        rng.fill(&mut p[..]);
        let t = random_ether_type(rng);
        p[12..14].copy_from_slice(&t.to_be_bytes());
        (p, format!("random bytes, Ethernet type {t:#06x}"))
    }

    /// A random packet with random header fields: plausible enough to get deep into the parser
    /// most of the time, with a lie somewhere some of the time.
    fn random_packet(&self, rng: &mut SmallRng, desc: &mut String) -> Vec<u8> {
        // Aimed at a VIP a third of the time (its address, port and protocol), so the VIP path
        // sees random headers around a valid tuple; otherwise every field is drawn on its own.
        let aimed = rng
            .random_bool(0.35)
            .then(|| self.model.vips.choose(rng).unwrap());
        let v4 = aimed.map_or_else(|| rng.random_bool(0.55), |v| v.addr.is_ipv4());
        let dst = aimed.map_or_else(|| random_dst(rng, self.model, v4), |v| v.addr);
        let src = random_client(rng, v4);
        let proto = aimed.map_or_else(|| random_proto(rng, v4), |v| v.proto.number());
        let _ = write!(desc, " {src} -> {dst} proto {proto}");
        let l4 = match proto {
            IPPROTO_TCP | IPPROTO_UDP => {
                let dport = aimed.map_or_else(|| self.random_port(rng, dst), |v| v.port);
                self.random_transport(rng, proto, dport)
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 if (proto == IPPROTO_ICMP) == v4 => {
                self.random_icmp(rng, v4, desc)
            }
            _ => random_body(rng, 0),
        };
        let mut f = Vec::with_capacity(ETH_HLEN + 80 + l4.len());
        if rng.random_bool(0.9) {
            f.extend_from_slice(&LB_MAC);
            f.extend_from_slice(&CLIENT_MAC);
        } else {
            f.extend(random_vec(rng, 12));
        }
        let ether_type = match rng.random_range(0..100) {
            0..95 if v4 => ETH_P_IP,
            0..95 => ETH_P_IPV6,
            _ => random_ether_type(rng),
        };
        f.extend_from_slice(&ether_type.to_be_bytes());
        if v4 {
            random_ipv4(rng, &mut f, src, dst, proto, &l4, desc);
        } else {
            random_ipv6(rng, &mut f, src, dst, proto, &l4, desc);
        }
        // ICMPv6 checksums need the final layout (extension headers, lengths).
        if proto == IPPROTO_ICMPV6 && !v4 && rng.random_bool(0.9) {
            let off = f.len() - l4.len();
            set_icmpv6_checksum(&mut f, off);
        }
        if rng.random_bool(0.2) {
            // Ethernet padding / trailing bytes beyond the IP length.
            let n = rng.random_range(1..=48);
            if rng.random_bool(0.5) {
                f.resize(f.len() + n, 0);
            } else {
                f.extend(random_vec(rng, n));
            }
            let _ = write!(desc, ", {n} trailing bytes");
        }
        f
    }

    fn random_port(&self, rng: &mut SmallRng, addr: IpAddr) -> u16 {
        let ports = self.model.ports_of(addr);
        if !ports.is_empty() && rng.random_bool(0.75) {
            *ports.choose(rng).unwrap()
        } else if rng.random_bool(0.3) {
            *[80, 53, 443, 22, 0, 65535].choose(rng).unwrap()
        } else {
            rng.random()
        }
    }

    fn random_transport(&self, rng: &mut SmallRng, proto: u8, dport: u16) -> Vec<u8> {
        let mut h = if proto == IPPROTO_TCP {
            let opt_words = if rng.random_bool(0.2) {
                rng.random_range(1..=10)
            } else {
                0
            };
            let mut h = random_vec(rng, 20 + opt_words * 4);
            let doff = if rng.random_bool(0.85) {
                5 + opt_words as u8
            } else {
                rng.random_range(0..16)
            };
            h[12] = doff << 4 | (h[12] & 0x0F);
            h[13] = *[0x02, 0x10, 0x12, 0x11, 0x04, 0x18, rng.random()]
                .choose(rng)
                .unwrap();
            h
        } else {
            random_vec(rng, 8)
        };
        h[0..2].copy_from_slice(&rng.random::<u16>().to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        let payload = random_body(rng, h.len() + 40);
        if proto == IPPROTO_UDP {
            let len = if rng.random_bool(0.85) {
                (8 + payload.len()) as u16
            } else {
                rng.random()
            };
            h[4..6].copy_from_slice(&len.to_be_bytes());
        }
        h.extend(payload);
        h
    }

    fn random_icmp(&self, rng: &mut SmallRng, v4: bool, desc: &mut String) -> Vec<u8> {
        let roll = rng.random_range(0..100);
        let mut m = random_vec(rng, 8);
        if roll < 35 {
            m[0] = if v4 { 8 } else { 128 };
            m[1] = if rng.random_bool(0.9) {
                0
            } else {
                rng.random()
            };
            m.extend(random_body(rng, 48));
            desc.push_str(" echo request");
        } else if roll < 80 {
            m[0] = *(if v4 { &[3u8, 11][..] } else { &[1u8, 2, 3][..] })
                .choose(rng)
                .unwrap();
            m[1] = rng.random_range(0..6);
            m.extend(self.random_quote(rng, v4, desc));
        } else {
            m[0] = rng.random();
            m.extend(random_body(rng, 48));
            let _ = write!(desc, " icmp type {}", m[0]);
        }
        if v4 && rng.random_bool(0.9) {
            m[2..4].copy_from_slice(&[0, 0]);
            let ck = packets::checksum(&m);
            m[2..4].copy_from_slice(&ck.to_be_bytes());
        }
        m
    }

    /// The quoted packet of an ICMP error: mostly the start of a packet a VIP sent to a client.
    fn random_quote(&self, rng: &mut SmallRng, v4: bool, desc: &mut String) -> Vec<u8> {
        let qv4 = if rng.random_bool(0.9) { v4 } else { !v4 };
        let src = if rng.random_bool(0.75) {
            *self.model.addresses_of(qv4).choose(rng).unwrap()
        } else {
            random_client(rng, qv4)
        };
        let dst = random_client(rng, qv4);
        let proto = match rng.random_range(0..10) {
            0..5 => IPPROTO_TCP,
            5..9 => IPPROTO_UDP,
            _ => rng.random(),
        };
        let sport = self.random_port(rng, src);
        let mut l4 = random_vec(rng, 8);
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        let mut q = Vec::new();
        if qv4 {
            let ihl = if rng.random_bool(0.9) {
                5
            } else {
                rng.random_range(0..16)
            };
            let mut h = random_vec(rng, (ihl as usize * 4).max(20));
            h[0] = 0x40 | ihl;
            h[9] = proto;
            h[12..16].copy_from_slice(&ip_bytes(src));
            h[16..20].copy_from_slice(&ip_bytes(dst));
            q.extend(h);
        } else {
            let mut h = random_vec(rng, 40);
            h[0] = 0x60 | (h[0] & 0x0F);
            h[6] = proto;
            h[8..24].copy_from_slice(&ip_bytes(src));
            h[24..40].copy_from_slice(&ip_bytes(dst));
            q.extend(h);
        }
        q.extend(l4);
        if rng.random_bool(0.3) {
            q.extend(random_body(rng, 80));
        }
        if rng.random_bool(0.15) {
            let keep = rng.random_range(0..=q.len());
            q.truncate(keep);
        }
        let _ = write!(
            desc,
            " icmp error quoting {src}:{sport} -> {dst} proto {proto} ({} bytes)",
            q.len()
        );
        q
    }
}

/// An IP protocol / next header: mostly TCP, UDP and ICMP, sometimes one the parser must walk
/// past or leave alone.
fn random_proto(rng: &mut SmallRng, v4: bool) -> u8 {
    match rng.random_range(0..100) {
        0..35 => IPPROTO_TCP,
        35..60 => IPPROTO_UDP,
        60..85 if v4 => IPPROTO_ICMP,
        60..85 => IPPROTO_ICMPV6,
        _ => *[
            IPPROTO_IPIP,
            IPPROTO_IPV6,
            IPPROTO_FRAGMENT,
            IPPROTO_HOPOPTS,
            IPPROTO_ROUTING,
            IPPROTO_DSTOPTS,
            IPPROTO_ICMP,
            IPPROTO_ICMPV6,
            50,
            59,
            132,
            rng.random(),
        ]
        .choose(rng)
        .unwrap(),
    }
}

/// A destination: mostly a VIP address, else a near miss (the VIP range, the backends' subnet)
/// or anything.
fn random_dst(rng: &mut SmallRng, model: &Model, v4: bool) -> IpAddr {
    let roll = rng.random_range(0..100);
    if roll < 60 {
        return *model.addresses_of(v4).choose(rng).unwrap();
    }
    if v4 {
        let o = match roll {
            60..75 => [198, 18, 100, rng.random()],
            75..85 => [198, 18, 1, rng.random()],
            _ => rng.random(),
        };
        Ipv4Addr::from(o).into()
    } else {
        let mut o: [u8; 16] = match roll {
            60..75 => "2001:db8:100::".parse::<Ipv6Addr>().unwrap().octets(),
            75..85 => "2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets(),
            _ => rng.random(),
        };
        if roll < 85 {
            o[15] = rng.random();
        }
        Ipv6Addr::from(o).into()
    }
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn random_vec(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

fn random_client(rng: &mut SmallRng, v4: bool) -> IpAddr {
    if v4 {
        let o = if rng.random_bool(0.8) {
            [198, 18, 0, rng.random()]
        } else {
            rng.random()
        };
        Ipv4Addr::from(o).into()
    } else {
        let mut o = "2001:db8::".parse::<Ipv6Addr>().unwrap().octets();
        if rng.random_bool(0.8) {
            o[14] = rng.random();
            o[15] = rng.random();
        } else {
            o = rng.random();
        }
        Ipv6Addr::from(o).into()
    }
}

fn random_ether_type(rng: &mut SmallRng) -> u16 {
    match rng.random_range(0..100) {
        0..45 => ETH_P_IP,
        45..85 => ETH_P_IPV6,
        85..90 => ETH_P_ARP,
        90..95 => ETH_P_8021Q,
        _ => rng.random(),
    }
}

/// Random bytes of a [`body_len`] length.
fn random_body(rng: &mut SmallRng, overhead: usize) -> Vec<u8> {
    let n = body_len(rng, overhead);
    random_vec(rng, n)
}

/// A payload length: mostly small, sometimes large, sometimes putting the IP packet (with
/// `overhead` bytes of headers) right around the MTU once encapsulated.
fn body_len(rng: &mut SmallRng, overhead: usize) -> usize {
    match rng.random_range(0..100) {
        0..60 => rng.random_range(0..=32),
        60..85 => rng.random_range(0..=600),
        _ => rng
            .random_range(FX_MTU - 64..=FX_MTU + 8)
            .saturating_sub(overhead),
    }
}

fn random_ipv4(
    rng: &mut SmallRng,
    f: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
    desc: &mut String,
) {
    let opt_words = if rng.random_bool(0.15) {
        rng.random_range(1..=10)
    } else {
        0
    };
    let mut h = random_vec(rng, 20 + opt_words * 4);
    h[0] = 0x45 + opt_words as u8;
    let tot = (h.len() + l4.len()) as u16;
    h[2..4].copy_from_slice(&tot.to_be_bytes());
    let frag: u16 = match rng.random_range(0..100) {
        0..60 => 0x4000,
        60..92 => 0,
        92..96 => 0x2000,
        _ => rng.random::<u16>() & 0x3FFF,
    };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[9] = proto;
    h[12..16].copy_from_slice(&ip_bytes(src));
    h[16..20].copy_from_slice(&ip_bytes(dst));
    if opt_words > 0 {
        let _ = write!(desc, ", {} bytes of ipv4 options", opt_words * 4);
    }
    if frag & 0x3FFF != 0 {
        let _ = write!(desc, ", fragment {frag:#06x}");
    }
    // A lie, sometimes: the parser must not trust these fields.
    match rng.random_range(0..100) {
        0..4 => {
            h[0] = (h[0] & 0x0F) | rng.random::<u8>() << 4;
            let _ = write!(desc, ", version {}", h[0] >> 4);
        }
        4..8 => {
            h[0] = 0x40 | rng.random_range(0..16);
            let _ = write!(desc, ", ihl {}", h[0] & 0x0F);
        }
        8..14 => {
            let t: u16 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => tot.wrapping_add(rng.random_range(1..=8)),
                _ => tot.saturating_sub(rng.random_range(1..=8)),
            };
            h[2..4].copy_from_slice(&t.to_be_bytes());
            let _ = write!(desc, ", total length {t} (true {tot})");
        }
        _ => {}
    }
    h[10..12].copy_from_slice(&[0, 0]);
    if rng.random_bool(0.95) {
        let ck = packets::checksum(&h);
        h[10..12].copy_from_slice(&ck.to_be_bytes());
    }
    f.extend(h);
    f.extend_from_slice(l4);
}

fn random_ipv6(
    rng: &mut SmallRng,
    f: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
    desc: &mut String,
) {
    // Extension headers, sometimes: the ones the program walks, more of them than it walks, and
    // fragment headers, chained properly (each one's first byte names the next).
    let mut kinds: Vec<u8> = Vec::new();
    let mut ext_bytes: Vec<u8> = Vec::new();
    if rng.random_bool(0.2) {
        for _ in 0..rng.random_range(1..=IPV6_MAX_EXT + 1) {
            kinds.push(
                *[
                    IPPROTO_HOPOPTS,
                    IPPROTO_ROUTING,
                    IPPROTO_DSTOPTS,
                    IPPROTO_DSTOPTS,
                    IPPROTO_FRAGMENT,
                ]
                .choose(rng)
                .unwrap(),
            );
        }
        for (i, &kind) in kinds.iter().enumerate() {
            let units = if kind == IPPROTO_FRAGMENT {
                0
            } else {
                rng.random_range(0..=2)
            };
            let mut h = random_vec(rng, (units + 1) * 8);
            h[0] = kinds.get(i + 1).copied().unwrap_or(proto);
            h[1] = units as u8;
            ext_bytes.extend(h);
        }
        let _ = write!(desc, ", extension headers {kinds:?}");
    }
    let first_next = kinds.first().copied().unwrap_or(proto);
    let mut h = random_vec(rng, 40);
    h[0] = 0x60 | (h[0] & 0x0F);
    let payload = (ext_bytes.len() + l4.len()) as u16;
    h[4..6].copy_from_slice(&payload.to_be_bytes());
    h[6] = first_next;
    h[8..24].copy_from_slice(&ip_bytes(src));
    h[24..40].copy_from_slice(&ip_bytes(dst));
    match rng.random_range(0..100) {
        0..4 => {
            h[0] = (h[0] & 0x0F) | rng.random::<u8>() << 4;
            let _ = write!(desc, ", version {}", h[0] >> 4);
        }
        4..10 => {
            let p: u16 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => payload.wrapping_add(rng.random_range(1..=8)),
                _ => payload.saturating_sub(rng.random_range(1..=8)),
            };
            h[4..6].copy_from_slice(&p.to_be_bytes());
            let _ = write!(desc, ", payload length {p} (true {payload})");
        }
        _ => {}
    }
    f.extend(h);
    f.extend(ext_bytes);
    f.extend_from_slice(l4);
}

fn clamp_frame(mut p: Vec<u8>) -> Vec<u8> {
    p.truncate(MAX_FRAME);
    if p.len() < ETH_HLEN {
        p.resize(ETH_HLEN, 0);
    }
    p
}

/// Offsets in a frame read as its Ethernet type says: (IPv4?, L3 offset, L4 offset).
fn layout(p: &[u8]) -> Option<(bool, usize, usize)> {
    if p.len() < ETH_HLEN + 20 {
        return None;
    }
    match be16(p, 12) {
        ETH_P_IP => Some((true, ETH_HLEN, ETH_HLEN + (p[ETH_HLEN] & 0x0F) as usize * 4)),
        ETH_P_IPV6 => Some((false, ETH_HLEN, ETH_HLEN + 40)),
        _ => None,
    }
}

/// One random mutation of `p`, described in `desc`. Most are aimed at the fields the parser
/// decides on; a few are blind.
fn mutate(rng: &mut SmallRng, model: &Model, p: &mut Vec<u8>, desc: &mut String) {
    let l = layout(p);
    let put16 = |p: &mut Vec<u8>, at: usize, v: u16| {
        if at + 2 <= p.len() {
            p[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    };
    match rng.random_range(0..17) {
        0 | 1 => {
            // Flip a bit, mostly in the headers.
            let span = if rng.random_bool(0.7) {
                p.len().min(80)
            } else {
                p.len()
            };
            let (i, b) = (rng.random_range(0..span), rng.random_range(0..8));
            p[i] ^= 1 << b;
            let _ = write!(desc, " flip bit {b} of byte {i};");
        }
        2 => {
            let i = rng.random_range(0..p.len());
            p[i] = rng.random();
            let _ = write!(desc, " byte {i} = {:#04x};", p[i]);
        }
        3 => {
            let n = if rng.random_bool(0.7) {
                rng.random_range(ETH_HLEN..=p.len().min(90))
            } else {
                rng.random_range(ETH_HLEN..=p.len())
            };
            p.truncate(n);
            let _ = write!(desc, " truncate to {n};");
        }
        4 => {
            let n = rng.random_range(1..=64);
            if rng.random_bool(0.5) {
                p.resize(p.len() + n, 0);
            } else {
                p.extend(random_vec(rng, n));
            }
            let _ = write!(desc, " append {n} bytes;");
        }
        5 | 6 => {
            // An IP length field: random, off by a little, the header only, or the frame's.
            let Some((v4, l3, l4)) = l else { return };
            let at = l3 + if v4 { 2 } else { 4 };
            let cur = be16(p, at);
            let frame = (p.len() - l3).saturating_sub(if v4 { 0 } else { 40 }) as u16;
            let v = match rng.random_range(0..5) {
                0 => rng.random(),
                1 => cur.wrapping_add(rng.random_range(1..=4)),
                2 => cur.wrapping_sub(rng.random_range(1..=4)),
                3 => (l4 - l3) as u16 - if v4 { 0 } else { 40 },
                _ => frame,
            };
            put16(p, at, v);
            let _ = write!(desc, " ip length {v} (was {cur});");
        }
        7 => {
            let Some((true, l3, _)) = l else { return };
            let ihl = rng.random_range(0..16);
            p[l3] = (p[l3] & 0xF0) | ihl;
            let _ = write!(desc, " ihl {ihl};");
        }
        8 => {
            let Some((_, l3, _)) = l else { return };
            let ver = *[4u8, 6, 0, 5, 15].choose(rng).unwrap();
            p[l3] = (p[l3] & 0x0F) | ver << 4;
            let _ = write!(desc, " ip version {ver};");
        }
        9 => {
            let Some((v4, l3, _)) = l else { return };
            let proto = *[
                IPPROTO_TCP,
                IPPROTO_UDP,
                IPPROTO_ICMP,
                IPPROTO_ICMPV6,
                IPPROTO_FRAGMENT,
                IPPROTO_HOPOPTS,
                IPPROTO_ROUTING,
                IPPROTO_DSTOPTS,
                IPPROTO_IPIP,
                IPPROTO_IPV6,
                rng.random(),
            ]
            .choose(rng)
            .unwrap();
            p[l3 + if v4 { 9 } else { 6 }] = proto;
            let _ = write!(desc, " protocol {proto};");
        }
        10 => {
            let Some((v4, l3, _)) = l else { return };
            if v4 {
                let v: u16 = match rng.random_range(0..4) {
                    0 => 0x2000,
                    1 => rng.random::<u16>() & 0x1FFF,
                    2 => 0x4000,
                    _ => rng.random(),
                };
                put16(p, l3 + 6, v);
                let _ = write!(desc, " ipv4 flags/fragment offset {v:#06x};");
            } else {
                insert_ipv6_ext(rng, p, desc);
            }
        }
        11 => {
            // Ports: a VIP's, or any.
            let Some((_, _, l4)) = l else { return };
            let port = if rng.random_bool(0.6) {
                model.vips.choose(rng).unwrap().port
            } else {
                rng.random()
            };
            let which = rng.random_range(0..2);
            put16(p, l4 + 2 * which, port);
            let _ = write!(desc, " {} port {port};", ["source", "destination"][which]);
        }
        12 | 13 => {
            // The destination (or source): another VIP address, a near miss, anything.
            let Some((v4, l3, _)) = l else { return };
            let a = match rng.random_range(0..3) {
                0 => *model.addresses_of(v4).choose(rng).unwrap(),
                1 => random_dst(rng, model, v4),
                _ => random_client(rng, v4),
            };
            let dst = rng.random_bool(0.8);
            let at = l3
                + match (v4, dst) {
                    (true, true) => 16,
                    (true, false) => 12,
                    (false, true) => 24,
                    (false, false) => 8,
                };
            let b = ip_bytes(a);
            if at + b.len() <= p.len() {
                p[at..at + b.len()].copy_from_slice(&b);
            }
            let _ = write!(desc, " {} {a};", if dst { "destination" } else { "source" });
        }
        14 => {
            let t = random_ether_type(rng);
            p[12..14].copy_from_slice(&t.to_be_bytes());
            let _ = write!(desc, " Ethernet type {t:#06x};");
        }
        15 => {
            // Make the IP length match the frame again, so the mutations around it still reach
            // the VIP path.
            let Some((v4, l3, _)) = l else { return };
            let v = (p.len() - l3).saturating_sub(if v4 { 0 } else { 40 }) as u16;
            put16(p, l3 + if v4 { 2 } else { 4 }, v);
            let _ = write!(desc, " ip length = frame ({v});");
        }
        _ => {
            // Shift everything after a random point (a header boundary in the middle of a
            // packet): insert or delete a few bytes.
            let at = rng.random_range(ETH_HLEN..=p.len());
            let n = rng.random_range(1..=8);
            if rng.random_bool(0.5) {
                let bytes = random_vec(rng, n);
                p.splice(at..at, bytes);
                let _ = write!(desc, " insert {n} bytes at {at};");
            } else {
                let end = (at + n).min(p.len());
                p.drain(at..end);
                let _ = write!(desc, " delete bytes {at}..{end};");
            }
        }
    }
    // The program does not check the IPv4 header checksum (the kernel does, on what it gets);
    // keep it right most of the time anyway, as a sender would.
    if let Some((true, l3, _)) = layout(p) {
        let ihl = (p[l3] & 0x0F) as usize * 4;
        if ihl >= 20 && l3 + ihl <= p.len() && rng.random_bool(0.7) {
            packets::fix_ipv4_checksum(p);
        }
    }
}

/// Insert an IPv6 extension header right after the IPv6 header, keeping the chain and the
/// payload length consistent.
fn insert_ipv6_ext(rng: &mut SmallRng, p: &mut Vec<u8>, desc: &mut String) {
    if p.len() < ETH_HLEN + 40 {
        return;
    }
    let kind = *[
        IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
        IPPROTO_DSTOPTS,
        IPPROTO_FRAGMENT,
    ]
    .choose(rng)
    .unwrap();
    let units = if kind == IPPROTO_FRAGMENT {
        0
    } else {
        rng.random_range(0..=1)
    };
    let mut h = random_vec(rng, (units + 1) * 8);
    h[0] = p[ETH_HLEN + 6];
    h[1] = units as u8;
    if kind == IPPROTO_FRAGMENT && rng.random_bool(0.5) {
        h[2..4].copy_from_slice(&[0, 0]); // an atomic fragment: offset 0, no more fragments
    }
    p[ETH_HLEN + 6] = kind;
    let len = be16(p, ETH_HLEN + 4).wrapping_add(h.len() as u16);
    p[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&len.to_be_bytes());
    let at = ETH_HLEN + 40;
    p.splice(at..at, h);
    let _ = write!(desc, " insert extension header {kind};");
}

// ---------------------------------------------------------------------------------------------
// The trials

fn seeds(model: &Model) -> Result<Vec<Seed>> {
    let mut s = builtin_seeds(model);
    s.extend(load_corpus()?);
    Ok(s)
}

fn fuzz_lb(fx0: u32, s: Settings) -> Result<()> {
    let mut checker = LbChecker::new(fx0)?;
    let model = Model::new()?;
    let seeds = seeds(&model)?;
    let generator = Generator {
        model: &model,
        seeds: &seeds,
    };
    let mut tally = Tally::default();
    let mut failures = Failures::new("fuzz/lb", &s);
    let start = Instant::now();
    let cases = s.cases(s.iterations);
    let n = cases.end - cases.start;
    for (done, index) in cases.enumerate() {
        if done > 0 && (done as u64).is_multiple_of(RELOAD_EVERY) {
            checker.reload()?;
        }
        let case = generator.case(s.seed, index);
        match checker.check(&case.input, case.ingress) {
            Ok((class, outcome)) => tally.add(class, &outcome),
            Err(e) => {
                let class = model.classify(&case.input).class;
                tally.add(class, "FAILED");
                failures.record(class, index, &case, e)?;
            }
        }
    }
    summary("fuzz/lb", &s, n, start, &tally);
    failures.finish()?;
    if n >= COVERAGE_MIN_ITERATIONS {
        tally.require(&[
            "tcp-to-vip -> tx",
            "tcp-to-vip -> redirect",
            "tcp-to-vip -> pass-encapsulated",
            "tcp-to-vip -> icmp-too-big",
            "tcp-to-vip -> drop-too-big",
            "tcp-to-vip -> drop-no-route",
            "tcp-to-vip -> drop-no-backend",
            "udp-to-vip -> tx",
            "udp-to-vip -> redirect",
            "udp-to-vip -> icmp-too-big",
            "icmp-error-about-vip-flow -> tx",
            "icmp-error-about-vip-flow -> redirect",
            "echo-to-vip-address -> echo-reply",
            "fragment-to-vip-address -> drop",
            "malformed-ipv4-lengths -> pass",
            "malformed-ipv6-length -> pass",
            "malformed-l4-truncated -> pass",
            "malformed-icmp-error-quote",
            "tcp-udp-not-a-vip -> pass",
            "not-ip -> pass",
        ])?;
        // "Exercised heavily": a real share of the cases must reach the VIP path.
        let balanced = tally.count(|k| {
            ["tcp-to-vip", "udp-to-vip", "icmp-error-about-vip-flow"]
                .iter()
                .any(|c| k.starts_with(c))
        });
        ensure!(
            balanced * 5 >= n,
            "coverage: only {balanced} of {n} cases were for a VIP\n{}",
            tally.table()
        );
    }
    Ok(())
}

/// Every seed and corpus file as-is: through the load balancer from both ingress interfaces, and
/// through the decap program. Reports every failing input, not only the first.
fn run_corpus(fx0: u32) -> Result<()> {
    let mut checker = LbChecker::new(fx0)?;
    let model = Model::new()?;
    let decap_model = DecapModel {
        vips: model.addresses.clone(),
    };
    let mut decap = Decap::new(&decap_model.vips)?;
    let (mut runs, mut errors) = (0, Vec::new());
    for seed in seeds(&model)? {
        for ingress in [Ingress::Lo, Ingress::Fx0] {
            if let Err(e) = checker.check(&seed.bytes, ingress) {
                errors.push(format!(
                    "`{}` through the load balancer from {}: {e:#}",
                    seed.name,
                    ingress_name(ingress)
                ));
            }
            runs += 1;
        }
        let result = decap
            .run(&seed.bytes)
            .and_then(|(action, out)| decap_model.check(&seed.bytes, action, &out));
        if let Err(e) = result {
            errors.push(format!("`{}` through decap: {e:#}", seed.name));
        }
        runs += 1;
    }
    ensure!(runs > 150, "only {runs} corpus runs");
    if !errors.is_empty() {
        bail!(
            "{} of {runs} corpus runs failed:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    Ok(())
}

/// A named way to break a packet, for the self-tests.
type Edit<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Each invariant must be able to fail: broken variants of real outputs are rejected.
fn model_rejects_broken_outputs(fx0: u32) -> Result<()> {
    let mut c = LbChecker::new(fx0)?;
    let vips = [
        ("198.18.0.10:40000", "198.18.100.1:80"),
        ("[2001:db8::10]:40000", "[2001:db8:100::1]:80"),
        ("198.18.0.10:40000", "198.18.100.2:80"),
    ];
    for (client, vip) in vips {
        let input = packets::tcp(client.parse()?, vip.parse()?, F::Ack, b"payload");
        let v = c.model.classify(&input);
        let Expect::Balance(b) = v.expect else {
            bail!("{vip}: classified {v:?}");
        };
        let (action, out) = c.lb.run(&input, Ingress::Fx0)?;
        c.check_expect(&v, &input, Ingress::Fx0, action, &out)
            .context("the genuine output")?;
        let outer_len = if be16(&out, 12) == ETH_P_IP { 20 } else { 40 };
        let v4_outer = outer_len == 20;
        let mut broken: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut edit = |what: &'static str, f: &dyn Fn(&mut Vec<u8>)| {
            let mut o = out.clone();
            f(&mut o);
            broken.push((what, o));
        };
        edit("ethertype", &|o| o[12] ^= 0x80);
        edit("outer version", &|o| o[14] ^= 0x20);
        edit("inner byte", &|o| *o.last_mut().unwrap() ^= 1);
        edit("padding lost", &|o| {
            o.pop();
        });
        edit("dst mac", &|o| o[0] ^= 2);
        if v4_outer {
            edit("checksum", &|o| o[24] ^= 1);
            edit("ihl", &|o| o[14] = 0x46);
            edit("total length", &|o| {
                o[17] = o[17].wrapping_add(1);
                packets::fix_ipv4_checksum(o);
            });
            edit("protocol", &|o| {
                o[23] = if o[23] == 4 { 41 } else { 4 };
                packets::fix_ipv4_checksum(o);
            });
            edit("ttl", &|o| {
                o[22] = 63;
                packets::fix_ipv4_checksum(o);
            });
            edit("outer source outside prefix", &|o| {
                o[28] = 10;
                packets::fix_ipv4_checksum(o);
            });
            edit("other backend", &|o| {
                o[33] = if o[33] == 11 { 12 } else { 11 };
                packets::fix_ipv4_checksum(o);
            });
            edit("not a backend", &|o| {
                o[33] = 99;
                packets::fix_ipv4_checksum(o);
            });
        } else {
            edit("payload length", &|o| o[19] = o[19].wrapping_add(1));
            edit("next header", &|o| o[20] = if o[20] == 4 { 41 } else { 4 });
            edit("hop limit", &|o| o[21] = 63);
            edit("outer source outside prefix", &|o| o[22] ^= 0x80);
            edit("other backend", &|o| {
                o[53] = if o[53] == 0x11 { 0x12 } else { 0x11 }
            });
            edit("not a backend", &|o| o[53] = 0x99);
            edit("flow label", &|o| o[17] ^= 1);
        }
        for (what, o) in broken {
            ensure!(
                c.check_balanced(&input, Ingress::Fx0, action, &o, b)
                    .is_err(),
                "{vip}: an output with a broken {what} was accepted"
            );
        }
        for wrong in [XDP_PASS, XDP_DROP, XDP_REDIRECT] {
            ensure!(
                c.check_balanced(&input, Ingress::Fx0, wrong, &out, b)
                    .is_err(),
                "{vip}: {} accepted for a forwarded packet",
                action_name(wrong)
            );
        }
    }
    // Too big once encapsulated: the program's ICMP error is accepted, broken ones are not, and
    // answering what must not be answered is caught.
    for (client, vip, ip_len) in [
        ("198.18.0.10:40000", "198.18.100.1:80", FX_MTU - 19),
        ("[2001:db8::10]:40000", "[2001:db8:100::1]:80", FX_MTU - 39),
    ] {
        let v4 = vip.starts_with('1');
        let overhead = if v4 { 40 } else { 60 };
        let mut input = packets::tcp(
            client.parse()?,
            vip.parse()?,
            F::Ack,
            &vec![0x5A; ip_len - overhead],
        );
        if v4 {
            input[20] |= 0x40; // DF: the sender does path MTU discovery
            packets::fix_ipv4_checksum(&mut input);
        }
        let v = c.model.classify(&input);
        let Expect::Balance(b) = v.expect else {
            bail!("{vip}: classified {v:?}");
        };
        let (action, out) = c.lb.run(&input, Ingress::Fx0)?;
        let outcome = c
            .check_expect(&v, &input, Ingress::Fx0, action, &out)
            .context("the genuine too-big answer")?;
        ensure!(outcome == "icmp-too-big", "{vip}: {outcome}");
        // The backends of these VIPs are of the VIP's family: that outer header must fit.
        let mtu = FX_MTU - if v4 { 20 } else { 40 };
        check_too_big(&input, XDP_TX, &out, b, mtu)?;
        let ip = ETH_HLEN;
        let icmp = ip + if v4 { 20 } else { 40 };
        let edits: [Edit; 6] = [
            ("icmp checksum", &|o| o[icmp + 2] ^= 1),
            ("icmp type", &|o| o[icmp] = 11),
            ("advertised mtu", &|o| o[icmp + 7] ^= 4),
            ("quote", &|o| *o.last_mut().unwrap() ^= 1),
            ("destination", &|o| o[icmp - 1] ^= 1),
            ("ethernet", &|o| o[5] ^= 1),
        ];
        for (what, edit) in edits {
            let mut o = out.clone();
            edit(&mut o);
            ensure!(
                check_too_big(&input, XDP_TX, &o, b, mtu).is_err(),
                "{vip}: a too-big answer with a broken {what} was accepted"
            );
        }
        ensure!(
            check_too_big(
                &input,
                XDP_TX,
                &out,
                Balanced {
                    icmp_error: true,
                    ..b
                },
                mtu
            )
            .is_err(),
            "{vip}: an ICMP error answered with an ICMP error was accepted"
        );
        if v4 {
            let mut no_df = input.clone();
            no_df[20] &= !0x40;
            packets::fix_ipv4_checksum(&mut no_df);
            ensure!(
                check_too_big(&no_df, XDP_TX, &out, b, mtu).is_err(),
                "an answer to an IPv4 packet without DF was accepted"
            );
        }
    }
    // A non-VIP packet: passing it modified, or not passing it, is caught.
    let input = packets::tcp(
        "198.18.0.10:1".parse()?,
        "198.18.100.9:80".parse()?,
        F::Syn,
        b"",
    );
    let v = c.model.classify(&input);
    let mut modified = input.clone();
    modified[30] ^= 1;
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_PASS, &modified)
            .is_err()
    );
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_TX, &input)
            .is_err()
    );
    ensure!(
        c.check_expect(&v, &input, Ingress::Lo, XDP_DROP, &input)
            .is_err()
    );
    // Echo replies: a correct one (built here) is accepted, and each broken variant refused.
    let req = packets::icmp_echo("198.18.0.10".parse()?, "198.18.100.1".parse()?);
    let v = c.model.classify(&req);
    let Expect::Echo(e) = v.expect else {
        bail!("echo request classified {v:?}");
    };
    let mut reply = req.clone();
    reply[..6].copy_from_slice(&req[6..12]);
    reply[6..12].copy_from_slice(&req[..6]);
    reply[26..30].copy_from_slice(&req[30..34]);
    reply[30..34].copy_from_slice(&req[26..30]);
    reply[22] = OUTER_TTL;
    packets::fix_ipv4_checksum(&mut reply);
    reply[34] = 0;
    reply[36..38].copy_from_slice(&[0, 0]);
    let ck = packets::checksum(&reply[34..]);
    reply[36..38].copy_from_slice(&ck.to_be_bytes());
    check_echo_reply(&req, &reply, XDP_TX, e).context("a correct echo reply")?;
    ensure!(check_echo_reply(&req, &reply, XDP_PASS, e).is_err());
    ensure!(check_echo_reply(&req, &req, XDP_TX, e).is_err());
    let edits: [Edit; 5] = [
        ("macs", &|r| r[0] ^= 1),
        ("icmp checksum", &|r| r[37] ^= 1),
        ("icmp type", &|r| r[34] = 8),
        ("ttl", &|r| {
            r[22] = 1;
            packets::fix_ipv4_checksum(r);
        }),
        ("ip checksum", &|r| r[24] ^= 1),
    ];
    for (what, edit) in edits {
        let mut r = reply.clone();
        edit(&mut r);
        ensure!(
            check_echo_reply(&req, &r, XDP_TX, e).is_err(),
            "an echo reply with a broken {what} was accepted"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The decap program

/// What the decap program must do with a frame.
#[derive(Debug, Clone, Copy)]
enum DecapExpect {
    Untouched,
    /// The outer header (`outer_len` bytes after Ethernet) removed; `inner_type` the new
    /// Ethernet type.
    Decapsulated {
        outer_len: usize,
        inner_type: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct DecapVerdict {
    expect: DecapExpect,
    /// Dropping is acceptable too: IP-in-IP whose inner header is cut off (the kernel would drop
    /// it as well, and the program cannot know whom it was for).
    or_drop: bool,
    class: &'static str,
}

struct DecapModel {
    vips: Vec<IpAddr>,
}

impl DecapModel {
    fn classify(&self, f: &[u8]) -> DecapVerdict {
        let untouched = |class| DecapVerdict {
            expect: DecapExpect::Untouched,
            or_drop: false,
            class,
        };
        if f.len() < ETH_HLEN {
            return untouched("runt");
        }
        let ip = &f[ETH_HLEN..];
        // What the frame claims to be: IP-in-IP, with an outer header of this length.
        let v4 = match be16(f, 12) {
            ETH_P_IP if ip.len() >= 20 => true,
            ETH_P_IPV6 if ip.len() >= 40 => false,
            ETH_P_IP | ETH_P_IPV6 => return untouched("outer-malformed"),
            _ => return untouched("not-ip"),
        };
        let (outer_len, proto) = if v4 {
            ((ip[0] & 0x0F) as usize * 4, ip[9])
        } else {
            (40, ip[6])
        };
        let (inner_v4, inner_type, hdr) = match proto {
            IPPROTO_IPIP => (true, ETH_P_IP, 20),
            IPPROTO_IPV6 => (false, ETH_P_IPV6, 40),
            _ => return untouched("not-ip-in-ip"),
        };
        // A fragment is the kernel's to reassemble first.
        if v4 && be16(ip, 6) & 0x3FFF != 0 {
            return untouched("outer-fragment");
        }
        // When the frame ends inside the inner header nobody can tell whom the packet was for:
        // dropping it is fine too (the kernel would drop it as well).
        let cut_off = ip.len() < outer_len.max(20) + hdr;
        // The outer header, fully validated, and where the outer packet ends.
        let ip_len = if v4 {
            let tot = be16(ip, 2) as usize;
            (ip[0] >> 4 == 4 && outer_len >= 20 && tot >= outer_len && tot <= ip.len())
                .then_some(tot)
        } else {
            let end = 40 + be16(ip, 4) as usize;
            (ip[0] >> 4 == 6 && end <= ip.len()).then_some(end)
        };
        let Some(ip_len) = ip_len else {
            return DecapVerdict {
                or_drop: cut_off,
                ..untouched("outer-malformed")
            };
        };
        // The inner header must lie inside the outer packet, not in what trails it.
        let inner = &ip[outer_len..ip_len];
        if inner.len() < hdr {
            return DecapVerdict {
                or_drop: true,
                ..untouched("inner-truncated")
            };
        }
        if inner[0] >> 4 != if inner_v4 { 4 } else { 6 } {
            return untouched("inner-version-mismatch");
        }
        let dst = if inner_v4 {
            v4_at(inner, 16)
        } else {
            v6_at(inner, 24)
        };
        if !self.vips.contains(&dst) {
            return untouched("inner-not-a-vip");
        }
        DecapVerdict {
            expect: DecapExpect::Decapsulated {
                outer_len,
                inner_type,
            },
            or_drop: false,
            class: "encapsulated-for-vip",
        }
    }

    fn check(&self, input: &[u8], action: u32, out: &[u8]) -> Result<&'static str> {
        let v = self.classify(input);
        let result: Result<&'static str> = (|| {
            if v.or_drop && action == XDP_DROP {
                return Ok("drop");
            }
            match v.expect {
                DecapExpect::Untouched => {
                    ensure!(
                        action == XDP_PASS,
                        "{}, expected XDP_PASS untouched",
                        action_name(action)
                    );
                    same_bytes(out, input).context("passed, but modified")?;
                    Ok("pass")
                }
                DecapExpect::Decapsulated {
                    outer_len,
                    inner_type,
                } => {
                    ensure!(
                        action == XDP_PASS,
                        "{}, expected XDP_PASS decapsulated",
                        action_name(action)
                    );
                    let mut want = input[..12].to_vec();
                    want.extend_from_slice(&inner_type.to_be_bytes());
                    want.extend_from_slice(&input[ETH_HLEN + outer_len..]);
                    same_bytes(out, &want)?;
                    Ok("decapsulated")
                }
            }
        })();
        result.with_context(|| format!("input class `{}`, expected {v:?}", v.class))
    }
}

/// An outer header around `inner` (an IP packet), as a sender of IP-in-IP would write it, with
/// a lie some of the time.
fn random_encapsulation(rng: &mut SmallRng, inner: &[u8], desc: &mut String) -> Vec<u8> {
    let outer_v4 = rng.random_bool(0.5);
    let inner_v4 = inner.first().is_some_and(|b| b >> 4 == 4);
    let proto = match rng.random_range(0..10) {
        0..9 if inner_v4 => IPPROTO_IPIP,
        0..9 => IPPROTO_IPV6,
        _ => *[IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, rng.random()]
            .choose(rng)
            .unwrap(),
    };
    let mut f = Vec::with_capacity(ETH_HLEN + 40 + inner.len());
    f.extend_from_slice(&[2, 0, 0, 0, 1, 11]);
    f.extend_from_slice(&LB_MAC);
    if outer_v4 {
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        let mut h = random_vec(rng, 20);
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + inner.len()) as u16).to_be_bytes());
        h[6..8].copy_from_slice(&[0x40, 0]);
        h[9] = proto;
        f.extend(h);
    } else {
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        let mut h = random_vec(rng, 40);
        h[0] = 0x60 | (h[0] & 0x0F);
        h[4..6].copy_from_slice(&(inner.len() as u16).to_be_bytes());
        h[6] = proto;
        f.extend(h);
    }
    f.extend_from_slice(inner);
    let _ = write!(
        desc,
        " in an outer IPv{} header, protocol {proto};",
        if outer_v4 { 4 } else { 6 }
    );
    if outer_v4 {
        packets::fix_ipv4_checksum(&mut f);
    }
    f
}

fn fuzz_decap(fx0: u32, s: Settings) -> Result<()> {
    let model = Model::new()?;
    let decap_model = DecapModel {
        vips: model.addresses.clone(),
    };
    let mut decap = Decap::new(&decap_model.vips)?;
    let mut lb = LbChecker::new(fx0)?;
    let seeds = seeds(&model)?;
    let generator = Generator {
        model: &model,
        seeds: &seeds,
    };
    let mut tally = Tally::default();
    let mut failures = Failures::new("fuzz/decap", &s);
    let start = Instant::now();
    let cases = s.cases((s.iterations / 4).max(1));
    let n = cases.end - cases.start;
    for (done, index) in cases.enumerate() {
        if done > 0 && (done as u64).is_multiple_of(RELOAD_EVERY) {
            lb.reload()?;
            decap = Decap::new(&decap_model.vips)?;
        }
        let mut rng = case_rng(s.seed, index);
        // The base: an LB fuzz case (random or mutated), whose inner packet is wrapped below.
        let base = generator.case(rng.random(), rng.random());
        let mut origin = base.origin.clone();
        let input = match rng.random_range(0..100) {
            0..40 => {
                // What the load balancer sends the backend (when it sends anything): the round
                // trip must give back the client's packet.
                let (action, out) = lb.lb.run(&base.input, base.ingress)?;
                origin.push_str(" | through the load balancer");
                let mut p = if action != XDP_DROP && out != base.input {
                    out
                } else {
                    base.input.clone()
                };
                if rng.random_bool(0.4) {
                    mutate(&mut rng, &model, &mut p, &mut origin);
                }
                p
            }
            40..80 => {
                let mut p = random_encapsulation(&mut rng, &base.input[ETH_HLEN..], &mut origin);
                if rng.random_bool(0.4) {
                    mutate(&mut rng, &model, &mut p, &mut origin);
                }
                p
            }
            _ => base.input.clone(),
        };
        let case = Case {
            input: clamp_frame(input),
            ingress: Ingress::Lo,
            origin,
        };
        let result = decap
            .run(&case.input)
            .and_then(|(action, out)| decap_model.check(&case.input, action, &out));
        let class = decap_model.classify(&case.input).class;
        match result {
            Ok(outcome) => tally.add(class, outcome),
            Err(e) => {
                tally.add(class, "FAILED");
                failures.record(class, index, &case, e)?;
            }
        }
    }
    summary("fuzz/decap", &s, n, start, &tally);
    failures.finish()?;
    if n >= COVERAGE_MIN_ITERATIONS / 4 {
        tally.require(&[
            "encapsulated-for-vip -> decapsulated",
            "inner-not-a-vip -> pass",
            "inner-truncated",
            "outer-malformed -> pass",
            "not-ip-in-ip -> pass",
        ])?;
    }
    Ok(())
}
