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

    fn ids(n: u32) -> Vec<[u8; 4]> {
        (0..n).map(|i| (0xC612_0000u32 + i).to_be_bytes()).collect()
    }

    fn members<'a>(idents: &'a [[u8; 4]], weights: &[u32]) -> Vec<Member<'a>> {
        idents
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (id, w))| Member {
                id: i as u32,
                identity: id,
                weight: *w,
            })
            .collect()
    }

    fn shares(table: &[u32], n: usize) -> Vec<f64> {
        let mut c = vec![0usize; n];
        for &s in table {
            c[s as usize] += 1;
        }
        c.iter().map(|&x| x as f64 / table.len() as f64).collect()
    }

    #[test]
    fn equal_weights_balance_within_one_percent() {
        let idents = ids(10);
        let t = build(&members(&idents, &[1; 10]), 65537);
        assert!(t.iter().all(|&s| s != NO_BACKEND));
        for s in shares(&t, 10) {
            assert!((s - 0.1).abs() < 0.001, "share {s}");
        }
    }

    #[test]
    fn weights_are_respected() {
        let idents = ids(3);
        let t = build(&members(&idents, &[100, 200, 100]), 65537);
        let s = shares(&t, 3);
        assert!(
            (s[0] - 0.25).abs() < 0.01 && (s[1] - 0.5).abs() < 0.01,
            "{s:?}"
        );
    }

    #[test]
    fn weight_zero_gets_no_slot_and_all_zero_is_empty() {
        let idents = ids(3);
        let t = build(&members(&idents, &[1, 0, 1]), 1009);
        assert!(!t.contains(&1));
        let t = build(&members(&idents, &[0, 0, 0]), 1009);
        assert!(t.iter().all(|&s| s == NO_BACKEND));
    }

    #[test]
    fn removing_a_backend_moves_few_other_flows() {
        let idents = ids(10);
        let before = build(&members(&idents, &[1; 10]), 65537);
        let mut m = members(&idents, &[1; 10]);
        m.remove(3);
        let after = build(&m, 65537);
        let moved_others = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != 3 && b != a)
            .count();
        // Slots of the removed backend must move; Maglev moves only a few percent of the rest.
        assert!(
            (moved_others as f64) < 0.05 * 65537.0,
            "moved {moved_others}"
        );
    }

    #[test]
    fn same_input_same_table() {
        let idents = ids(5);
        assert_eq!(
            build(&members(&idents, &[1; 5]), 251),
            build(&members(&idents, &[1; 5]), 251)
        );
    }
}
