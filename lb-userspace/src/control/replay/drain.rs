//! Operator drains: out of the ring at once, removed when the backend's last flow ends (by the
//! flow table's own rules) or at the timeout, whichever is first.
use std::time::Duration;

use lb_common::flow::{FLOW_F_CLOSING, FLOW_F_ESTABLISHED, FlowState};

use super::{Replay, vip, writes::TWO_VIPS};
use crate::{control::Request, wire::flow_key};

fn drain(r: &mut Replay, timeout: &str) {
    let body = format!(r#"{{"draining": true, "drain_timeout": "{timeout}"}}"#);
    r.call_ok(Request::UpdateBackend(
        vip("tcp:198.18.100.1:80"),
        "198.18.0.21".parse().unwrap(),
        serde_json::from_str(&body).unwrap(),
    ));
}

/// An established flow of 198.18.0.21 on :80, last seen now.
fn flow_on_b0(r: &mut Replay, port: u16, flags: u32) -> lb_common::flow::FlowKey {
    let key = flow_key(
        crate::config::Protocol::Tcp,
        format!("198.18.0.10:{port}").parse().unwrap(),
        "198.18.100.1:80".parse().unwrap(),
    )
    .unwrap();
    let entry = FlowState {
        backend_id: r.backend_id("198.18.0.21"),
        flags,
        last_seen: r.clock.flow_tick(),
        ..FlowState::default()
    };
    r.control.maps.flows.insert(key, entry);
    key
}

#[test]
fn a_drain_ends_when_the_last_flow_closes() {
    let mut r = Replay::start(TWO_VIPS);
    r.writes();
    let key = flow_on_b0(&mut r, 40000, FLOW_F_ESTABLISHED);
    drain(&mut r, "60s");
    assert_eq!(
        r.writes(),
        [
            "ring @1009 size 1009: #1×1009",
            "vip tcp 198.18.100.1:80 -> @1009 size 1009",
        ],
        "out of the ring, its slot kept for its flows"
    );
    assert_eq!(
        r.member_state("tcp 198.18.100.1:80", "198.18.0.21"),
        "draining"
    );
    // The flow is busy for a minute less a bit: the drain holds.
    for _ in 0..5 {
        r.advance(Duration::from_secs(10));
        r.control.maps.flows.get_mut(&key).unwrap().last_seen = r.clock.flow_tick();
    }
    assert_eq!(r.writes(), Vec::<String>::new());
    // The client closes; the close's last ACKs get 2 s, then the backend leaves the VIP (its
    // slot is cleared: no other VIP uses it).
    let entry = r.control.maps.flows.get_mut(&key).unwrap();
    entry.flags |= FLOW_F_CLOSING;
    entry.last_seen = r.clock.flow_tick();
    r.advance(Duration::from_millis(1800));
    assert_eq!(r.writes(), Vec::<String>::new(), "within the closing grace");
    r.advance(Duration::from_secs(2));
    assert_eq!(r.writes(), ["backend #0 cleared"]);
    assert!(
        r.control
            .state
            .backend_id("198.18.0.21".parse().unwrap())
            .is_none(),
        "removed from the VIP"
    );
}

#[test]
fn a_drain_ends_at_its_timeout_whatever_flows_are_left() {
    let mut r = Replay::start(TWO_VIPS);
    flow_on_b0(&mut r, 40001, FLOW_F_ESTABLISHED);
    drain(&mut r, "5s");
    r.writes();
    r.advance(Duration::from_millis(4800));
    assert_eq!(r.writes(), Vec::<String>::new());
    r.advance(Duration::from_millis(400));
    assert_eq!(r.writes(), ["backend #0 cleared"]);
}

#[test]
fn a_silent_flow_or_a_bare_attempt_does_not_hold_a_drain_for_ever() {
    let mut r = Replay::start(TWO_VIPS);
    // A SYN that never got an answer: it holds the drain 5 s at most.
    flow_on_b0(&mut r, 40002, 0);
    drain(&mut r, "10m");
    r.writes();
    r.advance(Duration::from_secs(4));
    assert_eq!(r.writes(), Vec::<String>::new());
    r.advance(Duration::from_secs(2));
    assert_eq!(r.writes(), ["backend #0 cleared"]);
}
