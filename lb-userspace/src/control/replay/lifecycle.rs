//! Slow start: a recovered backend's ring weight climbs in tenths of `slow_start`, one ring
//! per step, then no more writes.
use std::time::Duration;

use super::Replay;
use crate::health::probe::Verdict;

const SLOW: &str = r#"
[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
slow_start = "10s"
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }]
[vip.health_check]
type = "tcp"
"#;

#[test]
fn a_recovered_backend_ramps_in_tenths_then_stops_writing() {
    let mut r = Replay::start(SLOW);
    r.probe("198.18.0.21", Verdict::Up, "ok");
    r.probe("198.18.0.22", Verdict::Up, "ok");
    // First answers are no recovery: full weight at once.
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "up");
    for _ in 0..3 {
        r.probe("198.18.0.21", Verdict::Down, "connect refused");
    }
    r.writes();
    for _ in 0..2 {
        r.probe("198.18.0.21", Verdict::Up, "ok");
    }
    assert_eq!(
        r.member_state("tcp 198.18.100.1:80", "198.18.0.21"),
        "slow-start"
    );
    let mut shares = Vec::new();
    let ring_of_b0 = |w: &[String]| -> Option<u32> {
        let ring = w.iter().find(|l| l.starts_with("ring"))?;
        let part = ring.split(' ').find(|p| p.starts_with("#0×"))?;
        part.trim_start_matches("#0×").parse().ok()
    };
    shares.push(ring_of_b0(&r.writes()).expect("a ring at recovery"));
    for _ in 0..10 {
        r.advance(Duration::from_secs(1));
        if let Some(n) = ring_of_b0(&r.writes()) {
            shares.push(n);
        }
    }
    // Weights 1/10 .. 9/10 then full against the other's 10/10: nine steps and the last.
    assert_eq!(shares.len(), 10, "{shares:?}");
    assert!(shares.windows(2).all(|w| w[0] < w[1]), "{shares:?}");
    assert!(shares[0] < 1009 / 10, "{shares:?}");
    assert!((500..=509).contains(&shares[9]), "{shares:?}");
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "up");
    r.advance(Duration::from_secs(5));
    assert_eq!(
        r.writes(),
        Vec::<String>::new(),
        "a finished ramp writes nothing"
    );
}
