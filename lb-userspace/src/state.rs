//! Desired state: what the maps should say, derived from the configuration. Assigns the small
//! integer ids the data plane uses (VIP ids, backend ids) and each VIP's two ring regions.
use std::{collections::BTreeMap, net::IpAddr};

use anyhow::{Result, ensure};
use lb_common::{
    backend::{BACKEND_F_VALID, Backend},
    config::DataplaneConfig,
    limits::MAX_BACKENDS,
    vip::{VipKey, VipMeta},
};

use crate::{
    config::{Config, Vip},
    maglev::{self, Member},
    wire::{Prefix, family, ip_words, vip_key},
};

#[derive(Clone, Debug)]
pub struct State {
    pub vips: Vec<VipState>,
    /// Backend id → address. Ids are indices; a backend shared by VIPs has one id.
    pub backends: Vec<IpAddr>,
    pub flow_table_size: u32,
    /// Ring slots the `RINGS` map needs for all VIPs (both halves each).
    pub ring_slots: u32,
}

#[derive(Clone, Debug)]
pub struct VipState {
    pub id: u32,
    pub spec: Vip,
    pub key: VipKey,
    /// First slot of each ring half in `RINGS`.
    pub regions: [u32; 2],
    /// Which half the data plane reads; `None` before the first publish.
    pub active: Option<usize>,
    /// (backend id, weight) in configuration order.
    pub members: Vec<(u32, u16)>,
}

impl State {
    pub fn from_config(cfg: &Config) -> Result<State> {
        let mut ids: BTreeMap<IpAddr, u32> = BTreeMap::new();
        let mut backends = Vec::new();
        let mut vips = Vec::with_capacity(cfg.vips.len());
        let mut next_slot: u64 = 0;
        for (i, v) in cfg.vips.iter().enumerate() {
            let members = v
                .backends
                .iter()
                .map(|b| {
                    let id = *ids.entry(b.address).or_insert_with(|| {
                        backends.push(b.address);
                        (backends.len() - 1) as u32
                    });
                    (id, b.weight)
                })
                .collect();
            let base = next_slot as u32;
            next_slot += 2 * v.ring_size as u64;
            ensure!(
                next_slot <= u32::MAX as u64,
                "the VIPs' rings need more than 2^32 slots"
            );
            vips.push(VipState {
                id: i as u32,
                spec: v.clone(),
                key: vip_key(v.address, v.port, v.protocol),
                regions: [base, base + v.ring_size],
                active: None,
                members,
            });
        }
        ensure!(
            backends.len() <= MAX_BACKENDS as usize,
            "too many backends ({} > {MAX_BACKENDS})",
            backends.len()
        );
        Ok(State {
            vips,
            backends,
            flow_table_size: cfg.dataplane.flow_table_size,
            ring_slots: next_slot as u32,
        })
    }

    /// The Maglev ring the VIP should have now.
    pub fn ring(&self, vip: &VipState) -> Vec<u32> {
        let identities: Vec<[u8; 16]> = vip
            .members
            .iter()
            .map(|(id, _)| identity(self.backends[*id as usize]))
            .collect();
        let members: Vec<Member<'_>> = vip
            .members
            .iter()
            .zip(&identities)
            .map(|((id, weight), ident)| Member {
                id: *id,
                identity: ident,
                weight: *weight as u32,
            })
            .collect();
        maglev::build(&members, vip.spec.ring_size)
    }

    /// The `BACKENDS` slot value for backend `id`.
    pub fn backend_value(&self, id: u32) -> Backend {
        let addr = self.backends[id as usize];
        Backend {
            addr: ip_words(addr),
            family: family(addr),
            flags: BACKEND_F_VALID,
            _pad: [0; 2],
        }
    }

    /// The `VIPS` value for a VIP whose ring half `half` is the one to read.
    pub fn vip_value(vip: &VipState, half: usize) -> VipMeta {
        VipMeta {
            vip_id: vip.id,
            flags: 0,
            ring_size: vip.spec.ring_size,
            ring_base: vip.regions[half],
        }
    }
}

/// A backend's identity for Maglev: its address's 16 bytes (IPv4 as IPv4-mapped IPv6), so the
/// permutation, and hence the ring, stays the same across restarts and id reassignments.
fn identity(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The data plane's host-wide settings: outer source prefixes whose host bits carry flow entropy.
pub fn dataplane_config(v4: Option<Prefix>, v6: Option<Prefix>) -> DataplaneConfig {
    let mut cfg = DataplaneConfig::default();
    if let Some(p) = v4 {
        cfg.src_v4 = ip_words(p.addr)[0];
        cfg.src_v4_hostmask = low_bits(32 - p.len as u32).to_be();
    }
    if let Some(p) = v6 {
        cfg.src_v6 = ip_words(p.addr);
        // Only the last 32 bits vary: plenty of entropy, and the rest of the prefix stays intact.
        cfg.src_v6_hostmask = low_bits((128 - p.len as u32).min(32)).to_be();
    }
    cfg
}

/// A u32 with its `n` (0..=32) lowest bits set.
fn low_bits(n: u32) -> u32 {
    if n == 0 { 0 } else { u32::MAX >> (32 - n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_masks() {
        let c = dataplane_config(
            Some("198.18.200.0/24".parse().unwrap()),
            Some("2001:db8:200::/120".parse().unwrap()),
        );
        assert_eq!(c.src_v4_hostmask, 0xFFu32.to_be());
        assert_eq!(c.src_v6_hostmask, 0xFFu32.to_be());
        let host = dataplane_config(Some("198.18.0.2".parse().unwrap()), None);
        assert_eq!(host.src_v4_hostmask, 0);
    }

    #[test]
    fn shared_backend_gets_one_id() {
        let cfg = Config::parse(
            r#"
            [[vip]]
            address = "198.18.100.1"
            port = 80
            protocol = "tcp"
            ring_size = 1009
            [[vip.backend]]
            address = "198.18.0.21"
            [[vip]]
            address = "198.18.100.1"
            port = 443
            protocol = "tcp"
            ring_size = 1009
            [[vip.backend]]
            address = "198.18.0.21"
            [[vip.backend]]
            address = "198.18.0.22"
            "#,
        )
        .unwrap();
        let s = State::from_config(&cfg).unwrap();
        assert_eq!(s.backends.len(), 2);
        assert_eq!(s.vips[1].members[0].0, 0);
        assert_eq!(s.vips[1].regions, [2018, 3027]);
        assert_eq!(s.ring_slots, 4036);
    }
}
