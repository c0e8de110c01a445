//! Starting over a running data plane: the new desired state keeps the backend ids, VIP ids and
//! active ring halves the adopted maps use. Flow-table entries name backend ids, and packets
//! are reading the active halves right now: a restart must neither renumber the former nor write
//! into the latter.
use std::collections::{BTreeSet, HashMap};

use lb_common::vip::VipKey;

use super::State;
use crate::dataplane::pins::Adopted;

/// Ids and regions held for the adopted data plane until the desired state claims them.
#[derive(Clone, Debug, Default)]
pub(super) struct Adoption {
    /// Backend address → its id in the adopted maps.
    backend_ids: HashMap<std::net::IpAddr, u32>,
    /// VIP → (id, active ring half's first slot, ring size) in the adopted maps.
    vips: HashMap<VipKey, (u32, u32, u32)>,
    /// Ids not claimed yet: fresh allocations skip them.
    pub unclaimed_backends: BTreeSet<u32>,
    pub unclaimed_vips: BTreeSet<u32>,
    /// Active halves not claimed yet (start, len): reserved until the adoption ends.
    unclaimed_regions: HashMap<VipKey, (u32, u32)>,
}

impl State {
    /// Hold what `a` uses, before any VIP or backend is added.
    pub fn adopt(&mut self, a: &Adopted) {
        self.published_addresses = a.addresses.iter().copied().collect();
        let mut ad = Adoption::default();
        for &(id, addr) in &a.backends {
            ad.backend_ids.insert(addr, id);
            ad.unclaimed_backends.insert(id);
        }
        for (key, meta) in &a.vips {
            if self.reserve_slots(meta.ring_base, meta.ring_size) {
                ad.vips
                    .insert(*key, (meta.vip_id, meta.ring_base, meta.ring_size));
                ad.unclaimed_regions
                    .insert(*key, (meta.ring_base, meta.ring_size));
            }
            ad.unclaimed_vips.insert(meta.vip_id);
        }
        self.adoption = ad;
    }

    /// The adopted id for a backend address, if it is still free.
    pub(super) fn adopted_backend_id(&mut self, addr: std::net::IpAddr) -> Option<u32> {
        let id = *self.adoption.backend_ids.get(&addr)?;
        self.adoption.unclaimed_backends.remove(&id).then_some(id)
    }

    /// The adopted (VIP id, active region) for a VIP of this ring size, if any.
    pub(super) fn adopted_vip(&mut self, key: &VipKey, ring_size: u32) -> Option<(u32, u32)> {
        let &(id, base, size) = self.adoption.vips.get(key)?;
        if size != ring_size || !self.adoption.unclaimed_vips.remove(&id) {
            return None;
        }
        self.adoption.unclaimed_regions.remove(key);
        Some((id, base))
    }

    /// Whether an id must not be handed out fresh.
    pub(super) fn backend_id_held(&self, id: u32) -> bool {
        self.adoption.unclaimed_backends.contains(&id)
    }

    pub(super) fn vip_id_held(&self, id: u32) -> bool {
        self.adoption.unclaimed_vips.contains(&id)
    }

    /// After the desired state is built and written: VIPs and backends the adopted maps had but
    /// the state does not are removed by the next sync, and their ring space is free again.
    pub fn finish_adoption(&mut self) {
        let ad = std::mem::take(&mut self.adoption);
        for (key, &(id, _, _)) in &ad.vips {
            if ad.unclaimed_vips.contains(&id) {
                self.pending.removed_vips.push(*key);
            }
        }
        // Also VIPs whose ring size changed (they were re-created with new regions).
        for key in ad.unclaimed_regions.keys() {
            if !self.pending.removed_vips.contains(key) && self.vip(key).is_err() {
                self.pending.removed_vips.push(*key);
            }
        }
        for &id in &ad.unclaimed_backends {
            self.pending.backends.insert(id);
        }
        for (_, (start, len)) in ad.unclaimed_regions {
            self.free_range(start, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use lb_common::vip::VipMeta;

    use super::*;
    use crate::config::Config;

    const CFG: &str = r#"
        [[vip]]
        address = "198.18.100.1"
        port = 80
        protocol = "tcp"
        ring_size = 1009
        [[vip.backend]]
        address = "198.18.0.21"
        [[vip.backend]]
        address = "198.18.0.22"
    "#;

    #[test]
    fn restart_keeps_ids_and_never_writes_the_active_half() {
        let key = Config::parse(CFG).unwrap().vips[0].key();
        // What a previous daemon left: other ids, the VIP reading slots 5000.., and a backend
        // and a VIP the new configuration no longer has.
        let other_key = crate::wire::vip_key(
            "198.18.100.9".parse().unwrap(),
            80,
            crate::config::Protocol::Tcp,
        );
        let adopted = Adopted {
            backends: vec![
                (7, "198.18.0.22".parse().unwrap()),
                (3, "198.18.0.21".parse().unwrap()),
                (9, "198.18.0.99".parse().unwrap()),
            ],
            vips: vec![
                (
                    key,
                    VipMeta {
                        vip_id: 4,
                        ring_base: 5000,
                        ring_size: 1009,
                        ..VipMeta::default()
                    },
                ),
                (
                    other_key,
                    VipMeta {
                        vip_id: 0,
                        ring_base: 0,
                        ring_size: 13,
                        ..VipMeta::default()
                    },
                ),
            ],
            down: Vec::new(),
            addresses: Vec::new(),
            flows: 0,
        };
        let cfg = Config::parse(CFG).unwrap();
        let mut s = State::from_config_adopting(&cfg, 10_000, Some(&adopted)).unwrap();
        let v = &s.vips[0];
        assert_eq!(v.id, 4);
        assert_eq!(v.regions[0], 5000);
        assert_eq!(
            v.active,
            Some(0),
            "the first publish must go to the other half"
        );
        assert!(v.regions[1] + 1009 <= 5000 || v.regions[1] >= 6009);
        let ids: Vec<u32> = v.members.iter().map(|m| m.backend_id).collect();
        assert_eq!(ids, vec![3, 7]);
        // A new backend gets neither an adopted id nor the one of the removed backend.
        s.add_backend(&key, "198.18.0.30".parse().unwrap(), 1)
            .unwrap();
        let new_id = s.vips[0].members[2].backend_id;
        assert!(![3, 7, 9].contains(&new_id), "{new_id}");
        s.finish_adoption();
        let p = s.take_pending();
        assert!(p.backends.contains(&9), "the removed backend is cleared");
        assert_eq!(p.removed_vips, vec![other_key]);
    }
}
