//! What API changes write: only what changed, in an order packets in flight can live with, and
//! nothing at all for a change that fails.
use super::{Replay, vip};
use crate::control::Request;

pub const TWO_VIPS: &str = r#"
[dataplane]
encap_source_v4 = "198.18.200.0/24"

[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }]

[[vip]]
address = "198.18.100.1"
port = 443
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.22" }]
"#;

#[test]
fn start_writes_backends_then_rings_then_vips_then_addresses() {
    let mut r = Replay::start(TWO_VIPS);
    assert_eq!(
        r.writes(),
        [
            "config",
            "backend #0 198.18.0.21 valid",
            "backend #1 198.18.0.22 valid",
            "ring @0 size 1009: #0×505 #1×504",
            "vip tcp 198.18.100.1:80 -> @0 size 1009",
            "ring @2018 size 1009: #1×1009",
            "vip tcp 198.18.100.1:443 -> @2018 size 1009",
            "address 198.18.100.1",
            // The final pass (down flags follow the rings).
            "backend #0 198.18.0.21 valid",
            "backend #1 198.18.0.22 valid",
        ]
    );
}

#[test]
fn a_weight_change_rebuilds_its_vip_only_and_the_same_weight_nothing() {
    let mut r = Replay::start(TWO_VIPS);
    r.writes();
    let same = serde_json::from_str(r#"{"weight": 100}"#).unwrap();
    r.call_ok(Request::UpdateBackend(
        vip("tcp:198.18.100.1:80"),
        "198.18.0.21".parse().unwrap(),
        same,
    ));
    assert_eq!(
        r.writes(),
        Vec::<String>::new(),
        "the weight it already has"
    );
    let half = serde_json::from_str(r#"{"weight": 50}"#).unwrap();
    r.call_ok(Request::UpdateBackend(
        vip("tcp:198.18.100.1:80"),
        "198.18.0.21".parse().unwrap(),
        half,
    ));
    // Into the other half, then the flip.
    assert_eq!(
        r.writes(),
        [
            "ring @1009 size 1009: #0×336 #1×673",
            "vip tcp 198.18.100.1:80 -> @1009 size 1009",
        ]
    );
}

#[test]
fn a_removed_vip_goes_before_its_address_and_its_backends_stay_while_shared() {
    let mut r = Replay::start(TWO_VIPS);
    r.writes();
    r.call_ok(Request::RemoveVip(vip("tcp:198.18.100.1:80")));
    // 198.18.0.22 still serves :443, so its slot stays; 198.18.0.21 is cleared after the entry
    // is gone. The address keeps its entry: :443 lives on it.
    assert_eq!(
        r.writes(),
        ["remove vip tcp 198.18.100.1:80", "backend #0 cleared"]
    );
    r.call_ok(Request::RemoveVip(vip("tcp:198.18.100.1:443")));
    assert_eq!(
        r.writes(),
        [
            "remove vip tcp 198.18.100.1:443",
            "remove address 198.18.100.1",
            "backend #1 cleared",
        ]
    );
}

#[test]
fn a_change_whose_write_fails_leaves_state_and_maps_as_they_were() {
    let mut r = Replay::start(TWO_VIPS);
    r.writes();
    let valid = |r: &Replay| -> Vec<(u32, lb_common::backend::Backend)> {
        let b = &r.control.maps.backends;
        b.iter()
            .filter(|(_, b)| b.is_configured())
            .map(|(i, b)| (*i, *b))
            .collect()
    };
    let backends_before = valid(&r);
    let vip_keys_before: Vec<_> = r.control.maps.vips.keys().copied().collect();
    let config_before = r.control.state.to_config();
    r.control.maps.fail_writes = Some("Argument list too long (os error 7)".into());
    let add = serde_json::from_str(r#"{"address": "198.18.0.23"}"#).unwrap();
    let e = r
        .call(Request::AddBackend(vip("tcp:198.18.100.1:80"), add))
        .unwrap_err();
    assert_eq!(e.status, 500);
    assert!(e.message.contains("writing the maps"), "{e:?}");
    assert_eq!(r.control.state.to_config(), config_before, "running state");
    assert_eq!(r.writes(), Vec::<String>::new(), "no write got through");
    // The maps work again: the next change goes through whole, and the refused one left no
    // trace behind to retry.
    r.control.maps.fail_writes = None;
    let w = serde_json::from_str(r#"{"weight": 200}"#).unwrap();
    r.call_ok(Request::UpdateBackend(
        vip("tcp:198.18.100.1:443"),
        "198.18.0.22".parse().unwrap(),
        w,
    ));
    let after = r.writes();
    assert!(
        !after.iter().any(|l| l.contains("198.18.0.23")),
        "the refused backend was written later: {after:?}"
    );
    assert_eq!(valid(&r), backends_before, "configured backend slots");
    let vip_keys: Vec<_> = r.control.maps.vips.keys().copied().collect();
    assert_eq!(vip_keys, vip_keys_before, "VIP entries");
}
