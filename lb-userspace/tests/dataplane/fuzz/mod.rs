//! Fuzzing the XDP programs through BPF_PROG_TEST_RUN: random and mutated packets, each checked
//! against what an independent model says must come out.
//!
//! The model ([`model::Model::classify`]) parses every input with its own code, not the
//! program's, and decides what the program must do with it:
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
//! broken IPv6 extension-header chain may be dropped), a [`model::Verdict`] allows both, and says
//! so. `fuzz/model-rejects-broken-outputs` shows that each check can fail.
//!
//! The decap program gets the same treatment ([`decap::DecapModel`]): only a well-formed IPIP /
//! IPv6-in-IP packet (outer header valid, inner header of the announced version inside the outer
//! packet) whose inner destination is a configured VIP is decapsulated; everything else passes
//! unchanged (or is dropped, when it says IP-in-IP but the inner header is cut off).
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
//!
//! The parts: [`settings`] and [`report`] (running and reporting), [`model`] (the oracle) and
//! [`check`] (the load balancer's output against it), [`seeds`], [`corpus`], [`generator`] and
//! [`mutators`] (the inputs), and the trials: [`lb`], [`decap`], [`corpus`], [`self_test`].
mod check;
mod corpus;
mod decap;
mod generator;
mod lb;
mod model;
mod mutators;
mod refusals;
mod report;
mod seeds;
mod self_test;
mod settings;

use libtest_mimic::Trial;

use crate::trial;
use corpus::run_corpus;
use decap::fuzz_decap;
use lb::fuzz_lb;
use self_test::model_rejects_broken_outputs;
use settings::Settings;

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
