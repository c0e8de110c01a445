//! The decap program: its model, and the trial that fuzzes it (with what the load balancer
//! sends, random encapsulations, and anything else).
use std::{fmt::Write as _, net::IpAddr, time::Instant};

use anyhow::{Context as _, Result, ensure};
use lb_userspace::testkit::{
    decap::Decap,
    lb::{Ingress, XDP_DROP, XDP_PASS, action_name, same_bytes},
    netns::LB_MAC,
    packets,
};
use rand::{Rng, rngs::SmallRng, seq::IndexedRandom};

use super::{
    COVERAGE_MIN_ITERATIONS, ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6,
    IPPROTO_TCP, RELOAD_EVERY,
    check::LbChecker,
    generator::{Case, Generator, random_vec},
    model::{Model, be16, v4_at, v6_at},
    mutators::{clamp_frame, mutate},
    report::{Failures, Tally, summary},
    seeds::seeds,
    settings::{Settings, case_rng},
};

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

pub(super) struct DecapModel {
    pub(super) vips: Vec<IpAddr>,
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

    pub(super) fn check(&self, input: &[u8], action: u32, out: &[u8]) -> Result<&'static str> {
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

pub(super) fn fuzz_decap(fx0: u32, s: Settings) -> Result<()> {
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
