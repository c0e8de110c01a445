//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Each backend walks its own permutation of the table's slots (offset and skip from two hashes of
//! its identity) and claims the next free slot when its turn comes. Weights decide how often a
//! backend gets a turn: per round every backend earns `weight` credits and claims one slot per
//! `max_weight` credits, so slot shares follow weights and weight 0 never claims a slot.
//! Because permutations depend only on each backend's own identity, removing one backend moves
//! (close to) only its slots.
use lb_common::backend::NO_BACKEND;
use xxhash_rust::xxh64::xxh64;

/// Seeds of Maglev's two permutation hashes (`offset` and `skip`); fixed so rings are the same
/// after a restart.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;

/// One backend as Maglev sees it.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// What the ring stores for it: the backend id.
    pub id: u32,
    /// Stable identity bytes (its address): the permutation depends on nothing else.
    pub identity: &'a [u8],
    pub weight: u32,
}

/// Build a table of `size` slots (a prime) holding member ids; every slot is `NO_BACKEND` when no
/// member has a positive weight.
pub fn build(members: &[Member<'_>], size: u32) -> Vec<u32> {
    assert!(size >= 2, "Maglev table size must be at least 2");
    let m = size as u64;
    let mut table = vec![NO_BACKEND; size as usize];
    let live: Vec<&Member<'_>> = members.iter().filter(|b| b.weight > 0).collect();
    let Some(max_weight) = live.iter().map(|b| b.weight as u64).max() else {
        return table;
    };
    // Per live member: current position in its permutation, its skip, and its credit.
    let mut pos: Vec<u64> = Vec::with_capacity(live.len());
    let mut skip: Vec<u64> = Vec::with_capacity(live.len());
    for b in &live {
        pos.push(xxh64(b.identity, OFFSET_SEED) % m);
        skip.push(xxh64(b.identity, SKIP_SEED) % (m - 1) + 1);
    }
    let mut credit = vec![0u64; live.len()];
    let mut filled = 0u64;
    loop {
        for (i, b) in live.iter().enumerate() {
            credit[i] += b.weight as u64;
            while credit[i] >= max_weight {
                credit[i] -= max_weight;
                // Next free slot in this member's permutation. The permutation visits every slot
                // (m prime, 0 < skip < m), so this ends while a slot is free.
                let mut c = pos[i];
                while table[c as usize] != NO_BACKEND {
                    c += skip[i];
                    if c >= m {
                        c -= m;
                    }
                }
                table[c as usize] = b.id;
                pos[i] = if c + skip[i] >= m {
                    c + skip[i] - m
                } else {
                    c + skip[i]
                };
                filled += 1;
                if filled == m {
                    return table;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities(n: u32) -> Vec<[u8; 16]> {
        (0..n)
            .map(|i| {
                std::net::Ipv4Addr::from(0xC612_0000 + i)
                    .to_ipv6_mapped()
                    .octets()
            })
            .collect()
    }

    fn members<'a>(idents: &'a [[u8; 16]], weight: impl Fn(u32) -> u32) -> Vec<Member<'a>> {
        idents
            .iter()
            .enumerate()
            .map(|(i, id)| Member {
                id: i as u32,
                identity: id,
                weight: weight(i as u32),
            })
            .collect()
    }

    fn slot_counts(table: &[u32], n: usize) -> Vec<u64> {
        let mut c = vec![0u64; n];
        for &s in table {
            c[s as usize] += 1;
        }
        c
    }

    /// Each backend's share of slots is within 1% (relative) of its weight share whenever the
    /// table has at least 100 slots per backend (per unit of the smallest weight).
    #[test]
    fn shares_are_within_one_percent_of_weight_shares() {
        // (N, M, weight of backend i)
        type Case = (u32, u32, fn(u32) -> u32);
        let cases: [Case; 5] = [
            (10, 1009, |_| 1),
            (100, 10007, |_| 1),
            (10, 65537, |_| 1),
            (100, 65537, |_| 100),
            // Weights 1..=4: the lightest gets 1/250 of the table, 262 slots at M = 65537.
            (100, 65537, |i| 1 + i % 4),
        ];
        for (n, m, weight) in cases {
            let idents = identities(n);
            let mem = members(&idents, weight);
            let table = build(&mem, m);
            assert!(table.iter().all(|&s| s != NO_BACKEND));
            let total: u64 = mem.iter().map(|b| b.weight as u64).sum();
            for (b, count) in mem.iter().zip(slot_counts(&table, n as usize)) {
                let want = m as f64 * b.weight as f64 / total as f64;
                let err = (count as f64 - want).abs() / want;
                assert!(
                    err <= 0.01,
                    "N={n} M={m}: backend {} has {count} slots, want {want:.1}",
                    b.id
                );
            }
        }
    }

    /// Removing one of N backends moves its own slots (1/N of the flows) plus a few others;
    /// measured at the default M = 65537: about 1.03/N in all for N = 10 and 1.6/N for N = 100.
    #[test]
    fn removing_one_backend_moves_close_to_one_nth() {
        for (n, bound) in [(10u32, 1.2), (100, 2.0)] {
            let idents = identities(n);
            let all = members(&idents, |_| 1);
            let before = build(&all, 65537);
            for removed in (0..n).step_by((n / 10) as usize) {
                let rest: Vec<Member<'_>> =
                    all.iter().filter(|b| b.id != removed).cloned().collect();
                let after = build(&rest, 65537);
                let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64;
                let own = before.iter().filter(|&&b| b == removed).count() as f64;
                assert!(after.iter().all(|&b| b != removed));
                let fraction = moved / 65537.0;
                assert!(
                    fraction <= bound / n as f64,
                    "N={n}: removing {removed} moved {fraction:.4} of flows (1/N = {:.4})",
                    1.0 / n as f64
                );
                assert!(moved >= own, "its own slots must move");
            }
        }
    }

    #[test]
    fn weight_zero_gets_no_slot_and_all_zero_is_empty() {
        let idents = identities(3);
        let t = build(&members(&idents, |i| (i != 1) as u32), 1009);
        assert!(!t.contains(&1));
        let t = build(&members(&idents, |_| 0), 1009);
        assert!(t.iter().all(|&s| s == NO_BACKEND));
    }

    #[test]
    fn same_input_same_table() {
        let idents = identities(5);
        assert_eq!(
            build(&members(&idents, |_| 1), 251),
            build(&members(&idents, |_| 1), 251)
        );
    }
}
