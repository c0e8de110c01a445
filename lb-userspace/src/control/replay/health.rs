//! Health checks through the control task: a new checked backend waits out of the ring for its
//! first result, a failing one leaves the ring and its flows are flagged for rescheduling, and
//! every backend down fails open or drops as configured.
use super::{Replay, vip};
use crate::{control::Request, health::probe::Verdict};

const CHECKED: &str = r#"
[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }]
[vip.health_check]
type = "tcp"
"#;

#[test]
fn a_fresh_start_fails_open_until_the_first_checks_answer() {
    let mut r = Replay::start(CHECKED);
    // Both wait for their first check: the VIP fails open (every backend "down"), so the ring
    // has them both and neither is flagged down.
    let start = r.writes();
    assert!(
        start.contains(&"ring @0 size 1009: #0×505 #1×504".to_string()),
        "{start:?}"
    );
    assert!(
        start.contains(&"backend #0 198.18.0.21 valid".to_string()),
        "{start:?}"
    );
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "down");
    // The first to answer has the ring to itself; the other waits, flagged down once the ring
    // that no longer fails open is out (before it, it still serves the failing-open ring).
    r.probe("198.18.0.21", Verdict::Up, "ok");
    assert_eq!(
        r.writes(),
        [
            "backend #0 198.18.0.21 valid",
            "backend #1 198.18.0.22 valid",
            "ring @1009 size 1009: #0×1009",
            "vip tcp 198.18.100.1:80 -> @1009 size 1009",
            "backend #0 198.18.0.21 valid",
            "backend #1 198.18.0.22 down",
        ]
    );
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "up");
    r.probe("198.18.0.22", Verdict::Up, "ok");
    let w = r.writes();
    assert!(
        w.contains(&"ring @0 size 1009: #0×505 #1×504".to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(&"backend #1 198.18.0.22 valid".to_string()),
        "{w:?}"
    );
}

#[test]
fn an_added_checked_backend_is_out_of_the_ring_until_its_first_pass() {
    let mut r = Replay::start(CHECKED);
    r.probe("198.18.0.21", Verdict::Up, "ok");
    r.probe("198.18.0.22", Verdict::Up, "ok");
    r.writes();
    let add = serde_json::from_str(r#"{"address": "198.18.0.23"}"#).unwrap();
    r.call_ok(Request::AddBackend(vip("tcp:198.18.100.1:80"), add));
    // Its slot is written (down), but no ring names it: new flows never meet it untested.
    let w = r.writes();
    assert!(
        w.contains(&"backend #2 198.18.0.23 down".to_string()),
        "{w:?}"
    );
    assert!(
        w.iter()
            .filter(|l| l.starts_with("ring"))
            .all(|l| !l.contains("#2")),
        "{w:?}"
    );
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.23"), "down");
    // A first failure settles it down at once (no fall count for a backend never up)...
    r.probe("198.18.0.23", Verdict::Down, "connect refused");
    assert_eq!(
        r.writes(),
        Vec::<String>::new(),
        "nothing changes for the maps"
    );
    // ...and then it must rise like any down backend: 2 passes.
    r.probe("198.18.0.23", Verdict::Up, "ok");
    assert_eq!(r.writes(), Vec::<String>::new(), "one pass of two");
    r.probe("198.18.0.23", Verdict::Up, "ok");
    let w = r.writes();
    assert!(
        w.iter().any(|l| l.starts_with("ring") && l.contains("#2×")),
        "{w:?}"
    );
    assert!(
        w.contains(&"backend #2 198.18.0.23 valid".to_string()),
        "{w:?}"
    );
}

#[test]
fn a_failing_backend_leaves_the_ring_after_fall_results_and_is_flagged_down() {
    let mut r = Replay::start(CHECKED);
    r.probe("198.18.0.21", Verdict::Up, "ok");
    r.probe("198.18.0.22", Verdict::Up, "ok");
    r.writes();
    r.probe("198.18.0.21", Verdict::Down, "connect refused");
    r.probe("198.18.0.21", Verdict::Down, "connect refused");
    assert_eq!(r.writes(), Vec::<String>::new(), "2 of fall 3");
    r.probe("198.18.0.21", Verdict::Down, "connect refused");
    // Out of the ring first, then flagged down (its flows reschedule onto the new ring).
    let w = r.writes();
    let ring = w
        .iter()
        .position(|l| l.starts_with("ring"))
        .expect("a ring");
    let flag = w
        .iter()
        .position(|l| l == "backend #0 198.18.0.21 down")
        .expect("flagged down");
    assert!(ring < flag, "{w:?}");
    assert!(w[ring].ends_with(": #1×1009"), "{w:?}");
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "down");
}
