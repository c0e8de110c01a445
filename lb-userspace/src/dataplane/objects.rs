//! The XDP objects built by `build.rs`, embedded so the binaries carry their own programs.

/// The load balancer (`lb-ebpf/src/bin/sheave-lb`).
pub static LB: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-lb"));

/// The load balancer built with lb-ebpf's `bench` feature: the same program and maps as [`LB`],
/// plus the bench-only entry points `sheave_lb_bench` and `sheave_flow_floor` and their maps.
/// Never what sheaved loads (see [`super::Dataplane::load_bench`]).
#[cfg(feature = "bench")]
pub static LB_BENCH: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench/sheave-lb"));

/// The backends' decapsulator (`lb-ebpf/src/bin/sheave-decap`).
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-decap"));

/// The pass-through program for veth peers (`lb-ebpf/src/bin/sheave-pass`).
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sheave-pass"));

static LB_OVERRIDE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Load the load balancer from other bytes than the embedded object (`sheaved --bpf-object`, to
/// rehearse an upgrade of the program under a running data plane). First call wins.
pub fn override_lb(object: Vec<u8>) {
    let _ = LB_OVERRIDE.set(object);
}

/// The load balancer's object: the override if one was set, else the embedded one.
pub fn lb() -> &'static [u8] {
    LB_OVERRIDE.get().map_or(LB, Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use aya_obj::Object;

    #[cfg(feature = "bench")]
    const BENCH_PROGRAMS: [&str; 2] = ["sheave_lb_bench", "sheave_flow_floor"];
    const BENCH_MAPS: [&str; 2] = ["BENCH_CONFIG", "BENCH_RESULT"];

    fn names<'a, V: 'a>(m: impl IntoIterator<Item = (&'a String, V)>) -> BTreeSet<&'a str> {
        m.into_iter().map(|(k, _)| k.as_str()).collect()
    }

    /// What sheaved embeds has only the production entry point: no bench-only programs or maps.
    #[test]
    fn the_production_object_has_no_bench_entry_points() {
        let obj = Object::parse(super::LB).expect("the embedded object parses");
        assert_eq!(names(&obj.programs), BTreeSet::from(["sheave_lb"]));
        let maps = names(&obj.maps);
        assert!(maps.contains("FLOWS"), "{maps:?}");
        for m in BENCH_MAPS {
            assert!(!maps.contains(m), "{m} in the production object");
        }
    }

    /// The bench object is the production one plus the bench entry points and their maps.
    #[cfg(feature = "bench")]
    #[test]
    fn the_bench_object_adds_only_the_bench_entry_points() {
        let prod = Object::parse(super::LB).expect("the embedded object parses");
        let bench = Object::parse(super::LB_BENCH).expect("the bench object parses");
        let mut programs = names(&prod.programs);
        programs.extend(BENCH_PROGRAMS);
        assert_eq!(names(&bench.programs), programs);
        let mut maps = names(&prod.maps);
        maps.extend(BENCH_MAPS);
        assert_eq!(names(&bench.maps), maps);
    }
}
