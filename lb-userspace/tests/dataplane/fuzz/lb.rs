//! The load balancer trial: random and mutated packets through `sheave_lb`, each checked
//! against the model, with coverage required of a full run.
use std::time::Instant;

use anyhow::{Result, ensure};

use super::{
    COVERAGE_MIN_ITERATIONS, RELOAD_EVERY,
    check::LbChecker,
    generator::Generator,
    model::Model,
    report::{Failures, Tally, summary},
    seeds::seeds,
    settings::Settings,
};

pub(super) fn fuzz_lb(fx0: u32, s: Settings) -> Result<()> {
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
            "malformed-l4-header -> drop",
            "ipv4-options-refused -> drop",
            "ipv6-extension-chain-refused -> drop",
            "refused-not-to-a-vip-address -> pass",
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
