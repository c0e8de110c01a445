//! A restarted daemon adopting the maps a previous one left: it keeps the backend ids the flow
//! table names and the ring half packets read, writes its first rings into the other half, and
//! removes what the configuration no longer has.
use lb_common::vip::VipMeta;

use super::Replay;
use crate::{dataplane::pins::Adopted, maps::recorder::Recorder, wire::vip_key};

/// `writes::TWO_VIPS` with a check on :80, so the data plane's "down" has a check to rise.
const CHECKED: &str = r#"
[dataplane]
encap_source_v4 = "198.18.200.0/24"

[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }]
[vip.health_check]
type = "tcp"

[[vip]]
address = "198.18.100.1"
port = 443
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.22" }]
"#;

#[test]
fn restart_keeps_ids_and_the_active_half_and_removes_the_rest() {
    let key80 = vip_key(
        "198.18.100.1".parse().unwrap(),
        80,
        crate::config::Protocol::Tcp,
    );
    let gone = vip_key(
        "198.18.100.9".parse().unwrap(),
        80,
        crate::config::Protocol::Tcp,
    );
    // What the previous daemon left: other ids, :80 reading slots 5000.., a VIP and a backend
    // the configuration no longer has, and 198.18.0.21 marked down.
    let adopted = Adopted {
        backends: vec![
            (7, "198.18.0.22".parse().unwrap()),
            (3, "198.18.0.21".parse().unwrap()),
            (9, "198.18.0.99".parse().unwrap()),
        ],
        down: vec!["198.18.0.21".parse().unwrap()],
        vips: vec![
            (
                key80,
                VipMeta {
                    vip_id: 4,
                    ring_base: 5000,
                    ring_size: 1009,
                    ..VipMeta::default()
                },
            ),
            (
                gone,
                VipMeta {
                    vip_id: 0,
                    ring_base: 7000,
                    ring_size: 13,
                    ..VipMeta::default()
                },
            ),
        ],
        addresses: vec![
            "198.18.100.1".parse().unwrap(),
            "198.18.100.9".parse().unwrap(),
        ],
        flows: 0,
    };
    let mut r = Replay::start_adopting(CHECKED, Some(&adopted), Recorder::default());
    let w = r.writes();
    // :80 keeps id 4 and its half at 5000; its first ring goes elsewhere, and only
    // 198.18.0.22 (#7) is in it: 198.18.0.21 (#3) was down and stays down until it rises.
    let ring80 = w
        .iter()
        .position(|l| l.starts_with("ring") && !l.starts_with("ring @5000"))
        .expect("a ring");
    assert!(w[ring80].ends_with(": #7×1009"), "{w:?}");
    assert!(
        w.iter()
            .any(|l| l.starts_with("vip tcp 198.18.100.1:80 -> @")),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|l| l.starts_with("ring @5000")),
        "wrote the active half: {w:?}"
    );
    assert!(
        w.contains(&"backend #3 198.18.0.21 down".to_string()),
        "{w:?}"
    );
    // Gone: the VIP, its address, the backend.
    for line in [
        "remove vip tcp 198.18.100.9:80",
        "remove address 198.18.100.9",
        "backend #9 cleared",
    ] {
        assert!(w.contains(&line.to_string()), "{line} missing from {w:?}");
    }
    assert!(
        !w.contains(&"address 198.18.100.1".to_string()),
        "rewrote a kept address: {w:?}"
    );
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.21"), "down");
    assert_eq!(r.member_state("tcp 198.18.100.1:80", "198.18.0.22"), "up");
}
