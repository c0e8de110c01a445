//! Passive outlier detection through the control task: the data plane's attempt counters (set
//! by hand here, as the XDP program counts them; the dataplane fixtures test the counting) trip a
//! backend, which leaves every ring and is flagged for the data plane, comes back after its
//! ejection time through slow start, goes straight back out on a failure on probation for twice
//! as long, and never takes a VIP past its ejection cap.
use std::time::Duration;

use lb_common::stats::Handshakes;

use super::Replay;
use crate::control::Request;

const WATCHED: &str = r#"
[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
slow_start = "10s"
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }, { address = "198.18.0.23" }]
[vip.outlier_detection]
consecutive_failures = 5
base_ejection_time = "30s"
max_ejection_time = "75s"
"#;

/// Backend `id`'s counters: `answered` and `unanswered` attempts so far.
fn counts(r: &mut Replay, addr: &str, answered: u64, unanswered: u64) {
    let id = r.backend_id(addr);
    r.control.maps.handshakes.insert(
        id,
        Handshakes {
            attempts: answered + unanswered,
            answered,
            retransmitted: unanswered,
        },
    );
}

const VIP: &str = "tcp 198.18.100.1:80";
const B1: &str = "198.18.0.21";

#[test]
fn five_unanswered_attempts_eject_and_the_ejection_ends_through_slow_start() {
    let mut r = Replay::start(WATCHED);
    counts(&mut r, B1, 40, 0);
    r.advance(Duration::from_millis(200));
    r.writes();
    // Four in a row: nothing yet.
    counts(&mut r, B1, 40, 4);
    r.advance(Duration::from_millis(200));
    assert_eq!(r.writes(), Vec::<String>::new());
    counts(&mut r, B1, 40, 5);
    r.advance(Duration::from_millis(200));
    let w = r.writes();
    assert!(
        w.contains(&"backend #0 198.18.0.21 ejected".to_string()),
        "{w:?}"
    );
    let ring = w
        .iter()
        .find(|l| l.starts_with("ring"))
        .expect("a new ring");
    assert!(!ring.contains("#0×"), "still in the ring: {ring}");
    assert_eq!(r.member_state(VIP, B1), "ejected");
    let reason = r.member_reason(VIP, B1);
    assert!(
        reason.starts_with("ejected: 5 attempts in a row unanswered, 1st time, back in 3"),
        "{reason}"
    );
    // Back after 30 s, ramping up, no longer flagged.
    r.advance(Duration::from_secs(29));
    assert_eq!(r.member_state(VIP, B1), "ejected");
    r.advance(Duration::from_millis(1200));
    assert_eq!(r.member_state(VIP, B1), "slow-start");
    let w = r.writes();
    assert!(
        w.contains(&"backend #0 198.18.0.21 valid".to_string()),
        "{w:?}"
    );
}

#[test]
fn a_failure_on_probation_ejects_again_for_longer_up_to_the_cap() {
    let mut r = Replay::start(WATCHED);
    let mut unanswered = 0;
    let mut trip = |r: &mut Replay| {
        unanswered += 5;
        counts(r, B1, 0, unanswered);
        r.advance(Duration::from_millis(200));
    };
    counts(&mut r, B1, 0, 0);
    r.advance(Duration::from_millis(200));
    let mut lengths = Vec::new();
    for _ in 0..4 {
        trip(&mut r);
        assert_eq!(r.member_state(VIP, B1), "ejected");
        let start = r.clock.now();
        while r.member_state(VIP, B1) == "ejected" {
            r.advance(Duration::from_secs(1));
            assert!(
                r.clock.now() - start < Duration::from_secs(200),
                "never back"
            );
        }
        lengths.push((r.clock.now() - start).as_secs());
    }
    // 30 s, then twice and three times as long, capped at 75 s.
    assert_eq!(lengths, [30, 60, 75, 75], "ejection lengths");
    assert_eq!(
        r.control
            .api_metrics
            .ejections
            .with_label_values(&[B1])
            .get(),
        4
    );
}

#[test]
fn never_more_than_the_cap_and_never_a_down_backend() {
    let mut r = Replay::start(WATCHED);
    for b in ["198.18.0.21", "198.18.0.22", "198.18.0.23"] {
        counts(&mut r, b, 0, 0);
    }
    r.advance(Duration::from_millis(200));
    // Every backend fails at once: 50% of 3 lets one go.
    for b in ["198.18.0.21", "198.18.0.22", "198.18.0.23"] {
        counts(&mut r, b, 0, 9);
    }
    r.advance(Duration::from_millis(200));
    let ejected: Vec<_> = ["198.18.0.21", "198.18.0.22", "198.18.0.23"]
        .iter()
        .filter(|b| r.member_state(VIP, b) == "ejected")
        .collect();
    assert_eq!(ejected.len(), 1, "{ejected:?}");

    // A disabled backend is the operator's: its failures eject nothing.
    let mut r = Replay::start(WATCHED);
    counts(&mut r, B1, 0, 0);
    r.advance(Duration::from_millis(200));
    r.call_ok(Request::SetBackendDisabled(B1.parse().unwrap(), true));
    counts(&mut r, B1, 0, 9);
    r.advance(Duration::from_millis(200));
    assert_eq!(r.member_state(VIP, B1), "disabled");
    assert!(
        r.control
            .state
            .outlier_status(r.backend_id(B1))
            .unwrap()
            .ejection
            .is_none()
    );
}

#[test]
fn clients_that_give_up_and_answered_attempts_eject_nothing() {
    let mut r = Replay::start(WATCHED);
    counts(&mut r, B1, 0, 0);
    r.advance(Duration::from_millis(200));
    for i in 1..=300u64 {
        // Every tick: 10 attempts answered, 2 that the clients abandoned (neither answered nor
        // retransmitted: not judged), and now and then one unanswered.
        let id = r.backend_id(B1);
        r.control.maps.handshakes.insert(
            id,
            Handshakes {
                attempts: i * 12,
                answered: i * 10,
                retransmitted: i / 7,
            },
        );
        r.advance(Duration::from_millis(200));
    }
    assert_eq!(r.member_state(VIP, B1), "up");
}
