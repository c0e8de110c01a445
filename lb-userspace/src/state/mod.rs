//! Desired state: what the maps should say. Owns the small integer ids the data plane uses (VIP
//! ids, backend ids) and each VIP's two ring regions, and records what changed since the last
//! [`crate::reconcile::sync`] so only that is written.
//!
//! Every change (configuration at start-up, API calls, `config apply`) goes through the
//! operations here; they validate first and change nothing on error.
use std::{collections::BTreeSet, net::IpAddr};

use lb_common::vip::VipKey;
use serde::{Deserialize, Serialize};

use crate::{
    clock::Clock,
    config::{
        BackendRef, Config, DataplaneOptions, HealthCheckConfig, MAX_RING_SIZE, Protocol, Vip,
        VipPolicy, is_prime, resolve_check,
    },
    wire::{vip_key, vip_name},
};

mod adopt;
mod alloc;
pub mod ejection;
mod encap;
mod error;
mod lifecycle;
mod pending;
mod validate;
mod values;

pub use ejection::{Ejection, OutlierStatus};
pub use encap::dataplane_config;
pub use error::{ErrorKind, StateError};
use error::{check_member_policy, check_policy, err};
pub use lifecycle::{
    BackendHealth, CheckStatus, Drain, DrainRequest, MemberState, RAMP_STEPS, WantedCheck,
};
pub use pending::Pending;

/// A VIP's identity and table size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipSpec {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub ring_size: u32,
    /// New flows per second that may enter the flow table (0: no limit); see `VipMeta`.
    #[serde(default)]
    pub new_flow_limit: u32,
    /// Health checks, slow start, drain timeout, all-down behaviour.
    #[serde(default)]
    pub policy: VipPolicy,
}

impl VipSpec {
    /// The spec a configured VIP describes.
    pub fn of(v: &Vip) -> VipSpec {
        VipSpec {
            address: v.address,
            port: v.port,
            protocol: v.protocol,
            ring_size: v.ring_size,
            new_flow_limit: v.new_flow_limit,
            policy: v.policy.clone(),
        }
    }

    /// `tcp 198.18.100.1:80`, `udp [2001:db8::1]:53`.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            self.protocol,
            std::net::SocketAddr::new(self.address, self.port)
        )
    }

    pub fn key(&self) -> VipKey {
        vip_key(self.address, self.port, self.protocol)
    }
}

/// A backend of one VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub backend_id: u32,
    pub weight: u16,
    /// Operator drain: no new flows, established flows continue until they end or the deadline;
    /// then the member is removed.
    pub drain: Option<Drain>,
    /// The VIP's health check keys that differ for this backend.
    pub health_check: Option<HealthCheckConfig>,
    /// Weight ramp start (slow start) for a newly added or recovered backend.
    pub slow_start_from: Option<std::time::Instant>,
}

impl Member {
    pub fn draining(&self) -> bool {
        self.drain.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct VipState {
    pub id: u32,
    pub spec: VipSpec,
    pub key: VipKey,
    /// First slot of each ring half in `RINGS`.
    pub regions: [u32; 2],
    /// Which half the data plane reads; `None` before the first publish.
    pub active: Option<usize>,
    pub members: Vec<Member>,
    /// Rings published for this VIP since the daemon started.
    pub rebuilds: u64,
    /// Slots per backend id in the published ring (what `status` shows as ring shares).
    pub slot_counts: std::collections::BTreeMap<u32, u32>,
    /// Ring weight per backend id in the published ring (slow start compares against it).
    pub published_weights: std::collections::BTreeMap<u32, u32>,
    /// Every backend is down and the VIP fails open (last published ring).
    pub failing_open: bool,
}

#[derive(Clone, Debug)]
struct BackendSlot {
    address: IpAddr,
    /// VIPs using it; the slot is freed at zero.
    refs: u32,
    /// Taken out by the operator (all VIPs).
    disabled: bool,
    health: BackendHealth,
    /// Passive outlier detection's judgement (see `ejection`).
    outlier: ejection::OutlierStatus,
}

#[derive(Clone, Debug)]
pub struct State {
    pub options: DataplaneOptions,
    /// In creation order.
    pub vips: Vec<VipState>,
    backends: Vec<Option<BackendSlot>>,
    /// Where the next backend id search starts: ids are reused as late as possible, so flows
    /// still in the flow table for a removed backend are unlikely to meet a new one on its id.
    next_backend: u32,
    /// Free ring slot ranges (start, len), sorted by start.
    free_slots: Vec<(u32, u32)>,
    pub ring_capacity: u32,
    pending: Pending,
    /// Ids and ring halves held for an adopted data plane (see `adopt`).
    adoption: adopt::Adoption,
    /// Slow-start and drain times are taken from it.
    pub clock: Clock,
    /// Addresses whose address entry the maps hold (written by the reconciler).
    pub published_addresses: BTreeSet<IpAddr>,
}

impl State {
    pub fn new(options: DataplaneOptions, ring_capacity: u32) -> State {
        State {
            options,
            vips: Vec::new(),
            backends: Vec::new(),
            next_backend: 0,
            free_slots: vec![(0, ring_capacity)],
            ring_capacity,
            pending: Pending {
                config: true,
                ..Pending::default()
            },
            adoption: Default::default(),
            clock: Clock::system(),
            published_addresses: BTreeSet::new(),
        }
    }

    /// The state a configuration describes; `ring_capacity` must hold every VIP's two halves.
    pub fn from_config(cfg: &Config, ring_capacity: u32) -> Result<State, StateError> {
        State::from_config_adopting(cfg, ring_capacity, None)
    }

    /// The state a configuration describes, keeping the ids and active ring halves of an adopted
    /// data plane (call [`State::finish_adoption`] once it is written).
    pub fn from_config_adopting(
        cfg: &Config,
        ring_capacity: u32,
        adopted: Option<&crate::dataplane::pins::Adopted>,
    ) -> Result<State, StateError> {
        let mut s = State::new(cfg.dataplane.clone(), ring_capacity);
        if let Some(a) = adopted {
            s.adopt(a);
        }
        for v in &cfg.vips {
            s.add_vip(VipSpec::of(v))?;
            for b in &v.backends {
                s.add_backend(&v.key(), b.address, b.weight)?;
                s.set_member_check(&v.key(), b.address, b.health_check.clone())?;
            }
        }
        s.skip_slow_start();
        Ok(s)
    }

    /// Ring slots a configuration needs (both halves of every VIP).
    pub fn slots_needed(cfg: &Config) -> u64 {
        cfg.vips.iter().map(|v| 2 * v.ring_size as u64).sum()
    }

    /// The desired state as a configuration (for persisting and diffing).
    pub fn to_config(&self) -> Config {
        Config {
            dataplane: self.options.clone(),
            vips: self
                .vips
                .iter()
                .map(|v| Vip {
                    address: v.spec.address,
                    port: v.spec.port,
                    protocol: v.spec.protocol,
                    ring_size: v.spec.ring_size,
                    new_flow_limit: v.spec.new_flow_limit,
                    policy: v.spec.policy.clone(),
                    backends: v
                        .members
                        .iter()
                        .map(|m| BackendRef {
                            address: self.backend_address(m.backend_id),
                            weight: m.weight,
                            health_check: m.health_check.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn vip(&self, key: &VipKey) -> Result<&VipState, StateError> {
        self.vip_index(key).map(|i| &self.vips[i])
    }

    fn vip_index(&self, key: &VipKey) -> Result<usize, StateError> {
        match self.vips.iter().position(|v| v.key == *key) {
            Some(i) => Ok(i),
            None => err(ErrorKind::NotFound, format!("no VIP {}", vip_name(key))),
        }
    }

    pub fn backend_address(&self, id: u32) -> IpAddr {
        self.backends[id as usize]
            .as_ref()
            .expect("members refer to live backend slots")
            .address
    }

    /// Backend ids in use, with their addresses.
    pub fn backends(&self) -> impl Iterator<Item = (u32, IpAddr)> + '_ {
        self.backends
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s.address)))
    }

    pub fn add_vip(&mut self, spec: VipSpec) -> Result<u32, StateError> {
        let key = spec.key();
        if self.vips.iter().any(|v| v.key == key) {
            return err(
                ErrorKind::Conflict,
                format!("VIP {} exists already", spec.name()),
            );
        }
        if spec.port == 0 {
            return err(
                ErrorKind::Invalid,
                format!("{}: port 0 cannot be a VIP's", spec.name()),
            );
        }
        validate::vip_address(spec.address)?;
        if !is_prime(spec.ring_size) || spec.ring_size > MAX_RING_SIZE {
            return err(
                ErrorKind::Invalid,
                format!(
                    "ring size {} must be a prime no larger than {MAX_RING_SIZE} (e.g. 65537)",
                    spec.ring_size
                ),
            );
        }
        if self.backend_id(spec.address).is_some() {
            return err(
                ErrorKind::Invalid,
                format!(
                    "{} cannot be a VIP: {} is a backend (packets to it would loop)",
                    spec.name(),
                    spec.address
                ),
            );
        }
        check_policy(&spec)?;
        let (id, [a, b], adopted) = self.alloc_vip(&key, spec.address, spec.ring_size)?;
        // Re-created within one change (e.g. a new ring size): keep the entry, do not delete it.
        self.pending.removed_vips.retain(|k| *k != key);
        self.vips.push(VipState {
            id,
            key,
            spec,
            regions: [a, b],
            active: adopted.then_some(0),
            members: Vec::new(),
            rebuilds: 0,
            slot_counts: Default::default(),
            published_weights: Default::default(),
            failing_open: false,
        });
        self.pending.vips.insert(id);
        Ok(id)
    }

    /// Remove a VIP; its backends stay if other VIPs use them.
    pub fn remove_vip(&mut self, key: &VipKey) -> Result<VipState, StateError> {
        let i = self.vip_index(key)?;
        let vip = self.vips.remove(i);
        for m in &vip.members {
            self.release_backend(m.backend_id);
        }
        self.free_range(vip.regions[0], vip.spec.ring_size);
        self.free_range(vip.regions[1], vip.spec.ring_size);
        self.pending.vips.remove(&vip.id);
        self.pending.removed_vips.push(vip.key);
        Ok(vip)
    }

    pub fn add_backend(
        &mut self,
        key: &VipKey,
        addr: IpAddr,
        weight: u16,
    ) -> Result<u32, StateError> {
        let i = self.vip_index(key)?;
        validate::backend_address(addr)?;
        if self.vips.iter().any(|v| v.spec.address == addr) {
            return err(
                ErrorKind::Invalid,
                format!(
                    "backend address {addr} is a VIP address: packets for it would come back to \
                     the load balancer"
                ),
            );
        }
        let vip = &self.vips[i];
        if vip
            .members
            .iter()
            .any(|m| self.backend_address(m.backend_id) == addr)
        {
            return err(
                ErrorKind::Conflict,
                format!("{addr} is already a backend of {}", vip.spec.name()),
            );
        }
        if (vip.members.len() as u64 + 1) * 10 > vip.spec.ring_size as u64 {
            return err(
                ErrorKind::Capacity,
                format!(
                    "ring size {} is too small for {} backends (needs at least 10 slots each)",
                    vip.spec.ring_size,
                    vip.members.len() + 1
                ),
            );
        }
        resolve_check(
            self.vips[i].spec.policy.health_check.as_ref(),
            None,
            vip.spec.port,
        )
        .map_err(|e| StateError {
            kind: ErrorKind::Invalid,
            message: format!("{e:#}"),
        })?;
        let id = self.acquire_backend(addr)?;
        let slow = !self.vips[i].spec.policy.slow_start.is_zero();
        self.vips[i].members.push(Member {
            backend_id: id,
            weight,
            drain: None,
            health_check: None,
            slow_start_from: slow.then(|| self.clock.now()),
        });
        self.pending.vips.insert(self.vips[i].id);
        Ok(id)
    }

    /// Remove a backend from a VIP. New flows stop at once. While another VIP still uses the
    /// backend its slot stays valid, so this VIP's established flows finish there; once no VIP
    /// uses it, the slot is cleared and those flows are rescheduled on their next packet.
    pub fn remove_backend(&mut self, key: &VipKey, addr: IpAddr) -> Result<(), StateError> {
        let (i, j) = self.member_index(key, addr)?;
        let m = self.vips[i].members.remove(j);
        // A member the published ring does not name (drained, down, weight 0) leaves it as it
        // is: no rebuild. (Before the first publish there is no ring to keep.)
        let v = &self.vips[i];
        if v.published_weights.contains_key(&m.backend_id) || v.active.is_none() {
            self.pending.vips.insert(v.id);
        }
        self.release_backend(m.backend_id);
        Ok(())
    }

    /// Change what a VIP is beyond its identity and ring size: new-flow limit and policy.
    pub fn update_vip(&mut self, spec: &VipSpec) -> Result<(), StateError> {
        let i = self.vip_index(&spec.key())?;
        if spec.ring_size != self.vips[i].spec.ring_size {
            return err(
                ErrorKind::Invalid,
                "a new ring size needs the VIP re-created",
            );
        }
        check_policy(spec)?;
        for m in &self.vips[i].members {
            check_member_policy(
                spec,
                m.health_check.as_ref(),
                self.backend_address(m.backend_id),
            )?;
        }
        self.vips[i].spec = spec.clone();
        self.pending.vips.insert(self.vips[i].id);
        self.mark_members_pending(i);
        Ok(())
    }

    /// Set (or clear) a member's health-check override.
    pub fn set_member_check(
        &mut self,
        key: &VipKey,
        addr: IpAddr,
        check: Option<HealthCheckConfig>,
    ) -> Result<(), StateError> {
        let (i, j) = self.member_index(key, addr)?;
        check_member_policy(&self.vips[i].spec, check.as_ref(), addr)?;
        self.vips[i].members[j].health_check = check;
        Ok(())
    }

    /// Change a member: its weight and/or its drain.
    pub fn update_member(
        &mut self,
        key: &VipKey,
        addr: IpAddr,
        weight: Option<u16>,
        drain: Option<DrainRequest>,
    ) -> Result<Member, StateError> {
        let (i, j) = self.member_index(key, addr)?;
        let now = self.clock.wall();
        let m = &mut self.vips[i].members[j];
        let before = m.clone();
        if let Some(w) = weight {
            m.weight = w;
        }
        match drain {
            Some(DrainRequest::Start { timeout }) => m.drain = Some(Drain::starting(now, timeout)),
            Some(DrainRequest::Cancel) => m.drain = None,
            None => {}
        }
        let after = m.clone();
        // The same weight again (or a new deadline for a drain under way) rebuilds no ring.
        if after.weight != before.weight || after.draining() != before.draining() {
            self.pending.vips.insert(self.vips[i].id);
        }
        Ok(after)
    }

    fn member_index(&self, key: &VipKey, addr: IpAddr) -> Result<(usize, usize), StateError> {
        let i = self.vip_index(key)?;
        match self.vips[i]
            .members
            .iter()
            .position(|m| self.backend_address(m.backend_id) == addr)
        {
            Some(j) => Ok((i, j)),
            None => err(
                ErrorKind::NotFound,
                format!("{addr} is not a backend of {}", self.vips[i].spec.name()),
            ),
        }
    }

    pub fn vip_by_id_mut(&mut self, id: u32) -> Option<&mut VipState> {
        self.vips.iter_mut().find(|v| v.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_VIPS: &str = r#"
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
    "#;

    fn state() -> State {
        State::from_config(&Config::parse(TWO_VIPS).unwrap(), 10_000).unwrap()
    }

    #[test]
    fn shared_backend_gets_one_id_and_regions_are_allocated() {
        let s = state();
        assert_eq!(s.backends().count(), 2);
        assert_eq!(s.vips[1].members[0].backend_id, 0);
        assert_eq!(s.vips[0].regions, [0, 1009]);
        assert_eq!(s.vips[1].regions, [2018, 3027]);
        assert_eq!(s.to_config(), Config::parse(TWO_VIPS).unwrap());
    }

    #[test]
    fn removing_frees_ids_and_slots_for_reuse() {
        let mut s = state();
        let key80 = s.vips[0].key;
        let removed = s.remove_vip(&key80).unwrap();
        assert_eq!(removed.regions, [0, 1009]);
        // 198.18.0.21 is still used by :443.
        assert_eq!(s.backends().count(), 2);
        let k443 = s.vips[0].key;
        s.remove_backend(&k443, "198.18.0.21".parse().unwrap())
            .unwrap();
        assert_eq!(s.backends().count(), 1);
        // A ring of 2018 slots fits where the removed VIP's two halves were.
        let id = s
            .add_vip(VipSpec {
                address: "198.18.100.2".parse().unwrap(),
                port: 80,
                protocol: Protocol::Tcp,
                ring_size: 1009,
                new_flow_limit: 0,
                policy: VipPolicy::default(),
            })
            .unwrap();
        assert_eq!(id, 0, "lowest free VIP id");
        assert_eq!(s.vips[1].regions, [0, 1009]);
        // Backend ids are not reused at once.
        let k = s.vips[1].key;
        assert_eq!(
            s.add_backend(&k, "198.18.0.30".parse().unwrap(), 1)
                .unwrap(),
            2
        );
    }

    #[test]
    fn bad_operations_change_nothing() {
        let mut s = state();
        let before = s.to_config();
        let k = s.vips[0].key;
        let e = s
            .add_backend(&k, "198.18.0.21".parse().unwrap(), 1)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        let e = s
            .remove_backend(&k, "198.18.0.99".parse().unwrap())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        let spec = s.vips[0].spec.clone();
        assert_eq!(s.add_vip(spec).unwrap_err().kind, ErrorKind::Conflict);
        let e = s
            .add_vip(VipSpec {
                address: "198.18.100.9".parse().unwrap(),
                port: 80,
                protocol: Protocol::Udp,
                ring_size: 100,
                new_flow_limit: 0,
                policy: VipPolicy::default(),
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = s
            .add_vip(VipSpec {
                address: "198.18.100.9".parse().unwrap(),
                port: 80,
                protocol: Protocol::Udp,
                ring_size: 65537,
                new_flow_limit: 0,
                policy: VipPolicy::default(),
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Capacity);
        assert_eq!(s.to_config(), before);
    }

    #[test]
    fn drain_and_weight_zero_take_no_slots() {
        let mut s = state();
        let k = s.vips[1].key;
        let now = std::time::Instant::now();
        let drain = DrainRequest::Start {
            timeout: std::time::Duration::from_secs(60),
        };
        s.update_member(&k, "198.18.0.22".parse().unwrap(), None, Some(drain))
            .unwrap();
        assert!(s.ring(&s.vips[1], now).slots.iter().all(|&b| b == 0));
        s.update_member(
            &k,
            "198.18.0.22".parse().unwrap(),
            None,
            Some(DrainRequest::Cancel),
        )
        .unwrap();
        s.update_member(&k, "198.18.0.21".parse().unwrap(), Some(0), None)
            .unwrap();
        assert!(s.ring(&s.vips[1], now).slots.iter().all(|&b| b == 1));
    }
}
