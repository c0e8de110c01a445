//! Full tables: every map filled to its limit through the API and through `config apply`. The
//! change that would overflow is refused before anything is written, names the limit, and
//! changes nothing; the daemon keeps taking other changes.
use std::fmt::Write as _;

use super::{Replay, vip};
use crate::{api::types::ConfigRequest, control::Request};

/// `n` TCP VIPs on distinct addresses 198.18.<i / 250>.<i % 250 + 1>, each with one backend,
/// ring size 13 (small: the ring table is not what is filled here).
fn distinct_vips(n: usize) -> String {
    let mut s = String::from("[dataplane]\nring_slots = 100000\n");
    for i in 0..n {
        let _ = write!(
            s,
            "\n[[vip]]\naddress = \"198.19.{}.{}\"\nport = 80\nprotocol = \"tcp\"\n\
             ring_size = 13\nbackend = [{{ address = \"198.18.0.21\" }}]\n",
            i / 250,
            i % 250 + 1
        );
    }
    s
}

fn apply(r: &mut Replay, toml: String) -> super::super::Reply {
    r.call(Request::ConfigApply(ConfigRequest { toml }))
}

#[test]
fn the_vip_map_fills_to_its_last_entry_and_refuses_the_next_whole() {
    // 256 VIPs on 256 addresses: 512 entries, the map's size.
    let mut r = Replay::start(&distinct_vips(1));
    apply(&mut r, distinct_vips(256)).expect("256 distinct VIPs fit");
    assert_eq!(r.control.maps.vips.len(), 512, "every entry written");
    r.writes();

    // One more address through the API: refused, naming the limit, nothing written.
    let add = serde_json::from_str(
        r#"{"protocol": "tcp", "address": "198.19.9.9", "port": 80, "ring_size": 13}"#,
    )
    .unwrap();
    let e = r.call(Request::AddVip(add)).unwrap_err();
    assert_eq!(e.status, 507, "{e:?}");
    assert!(
        e.message.contains("VIP map is full") && e.message.contains("512"),
        "{e:?}"
    );
    assert_eq!(r.writes(), Vec::<String>::new());
    // Another port on an existing address needs one entry: still none left.
    let add = serde_json::from_str(
        r#"{"protocol": "tcp", "address": "198.19.0.1", "port": 81, "ring_size": 13}"#,
    )
    .unwrap();
    assert_eq!(r.call(Request::AddVip(add)).unwrap_err().status, 507);

    // `config apply` of 257 is refused whole: the 256 stay as they are.
    let before = r.control.state.to_config();
    let e = apply(&mut r, distinct_vips(257)).unwrap_err();
    assert_eq!(e.status, 507, "{e:?}");
    assert_eq!(r.control.state.to_config(), before);
    assert_eq!(r.writes(), Vec::<String>::new());

    // The daemon goes on: a weight change on a full map is fine.
    let w = serde_json::from_str(r#"{"weight": 7}"#).unwrap();
    r.call_ok(Request::UpdateBackend(
        vip("tcp:198.19.0.1:80"),
        "198.18.0.21".parse().unwrap(),
        w,
    ));
    assert_eq!(r.writes().len(), 2, "one ring, one flip");
}

#[test]
fn the_ring_table_fills_and_refuses_a_ring_that_does_not_fit() {
    // 100,000 slots: 3 VIPs of 2 × 16,661 slots fit (99,966), a fourth does not.
    let cfg = |n: usize| {
        let mut s = String::from("[dataplane]\nring_slots = 100000\n");
        for i in 0..n {
            let _ = write!(
                s,
                "\n[[vip]]\naddress = \"198.19.0.1\"\nport = {}\nprotocol = \"tcp\"\n\
                 ring_size = 16661\nbackend = [{{ address = \"198.18.0.21\" }}]\n",
                80 + i
            );
        }
        s
    };
    let mut r = Replay::start(&cfg(3));
    r.writes();
    let e = apply(&mut r, cfg(4)).unwrap_err();
    assert_eq!(e.status, 507, "{e:?}");
    assert!(e.message.contains("raise dataplane.ring_slots"), "{e:?}");
    assert_eq!(r.writes(), Vec::<String>::new());
    assert_eq!(r.control.state.vips.len(), 3);
}

#[test]
fn the_backend_array_fills_to_its_last_slot() {
    // 4096 backends (the array's size) over 8 VIPs of 512, then one more.
    let cfg = |extra: bool| {
        let mut s = String::from("[dataplane]\nring_slots = 200000\n");
        for v in 0..8 {
            let _ = write!(
                s,
                "\n[[vip]]\naddress = \"198.19.0.1\"\nport = {}\nprotocol = \"tcp\"\n\
                 ring_size = 5297\n",
                80 + v
            );
            for b in 0..512 {
                let n = v * 512 + b;
                let _ = write!(
                    s,
                    "[[vip.backend]]\naddress = \"198.18.{}.{}\"\n",
                    16 + n / 250,
                    n % 250 + 1
                );
            }
        }
        if extra {
            s += "\n[[vip]]\naddress = \"198.19.0.1\"\nport = 99\nprotocol = \"tcp\"\n\
                  ring_size = 13\nbackend = [{ address = \"198.18.200.1\" }]\n";
        }
        s
    };
    let mut r = Replay::start(&cfg(false));
    assert_eq!(r.control.state.backends().count(), 4096);
    r.writes();
    let e = apply(&mut r, cfg(true)).unwrap_err();
    assert!(e.status == 507 || e.status == 400, "{e:?}");
    assert!(e.message.contains("4096"), "{e:?}");
    assert_eq!(r.writes(), Vec::<String>::new());
}
