//! Desired state: what the maps should say. Owns the small integer ids the data plane uses (VIP
//! ids, backend ids) and each VIP's two ring regions, and records what changed since the last
//! [`crate::reconcile::sync`] so only that is written.
//!
//! Every change (configuration at start-up, API calls, `config apply`) goes through the
//! operations here; they validate first and change nothing on error.
use std::{collections::BTreeSet, fmt, net::IpAddr};

use lb_common::{
    backend::{BACKEND_F_VALID, Backend},
    config::DataplaneConfig,
    limits::{MAX_BACKENDS, MAX_VIPS},
    vip::{VipKey, VipMeta},
};
use serde::{Deserialize, Serialize};

use crate::{
    clock::Clock,
    config::{
        BackendRef, Config, DataplaneOptions, HealthCheckConfig, MAX_RING_SIZE, Protocol, Vip,
        VipPolicy, is_prime, resolve_check, validate_policy,
    },
    maglev,
    wire::{Prefix, family, ip_words, vip_key, vip_name},
};

mod adopt;
mod lifecycle;
pub use lifecycle::{
    BackendHealth, CheckStatus, Drain, DrainRequest, MemberState, RAMP_STEPS, WantedCheck,
};

/// Why an operation was refused: callers (the API) map the kind to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The VIP or backend named does not exist.
    NotFound,
    /// It exists already.
    Conflict,
    /// The request itself is wrong (bad weight, ring size, family...).
    Invalid,
    /// A table is full.
    Capacity,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StateError {}

fn err<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, StateError> {
    Err(StateError {
        kind,
        message: message.into(),
    })
}

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

/// What [`crate::reconcile::sync`] still has to write.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    /// Backend slots to (re)write: valid if in use, cleared otherwise.
    pub backends: BTreeSet<u32>,
    /// VIP ids whose ring and entry to publish.
    pub vips: BTreeSet<u32>,
    /// VIP entries to delete.
    pub removed_vips: Vec<VipKey>,
    pub config: bool,
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
        if spec.port == 0 || spec.address.is_unspecified() || spec.address.is_multicast() {
            return err(
                ErrorKind::Invalid,
                format!("{} cannot be a VIP", spec.name()),
            );
        }
        if !is_prime(spec.ring_size) || spec.ring_size > MAX_RING_SIZE {
            return err(
                ErrorKind::Invalid,
                format!(
                    "ring size {} must be a prime no larger than {MAX_RING_SIZE} (e.g. 65537)",
                    spec.ring_size
                ),
            );
        }
        check_policy(&spec)?;
        let used: BTreeSet<u32> = self.vips.iter().map(|v| v.id).collect();
        let adopted = self.adopted_vip(&key, spec.ring_size);
        let fresh = (0..MAX_VIPS).find(|&i| !used.contains(&i) && !self.vip_id_held(i));
        let Some(id) = adopted.map(|(id, _)| id).or(fresh) else {
            return err(
                ErrorKind::Capacity,
                format!("all {MAX_VIPS} VIP slots are in use"),
            );
        };
        let a = match adopted {
            // The half packets read now: the first publish writes the other one.
            Some((_, base)) => base,
            None => match self.alloc_slots(spec.ring_size) {
                Some(a) => a,
                None => {
                    return err(
                        ErrorKind::Capacity,
                        self.ring_capacity_message(spec.ring_size),
                    );
                }
            },
        };
        let Some(b) = self.alloc_slots(spec.ring_size) else {
            self.free_range(a, spec.ring_size);
            return err(
                ErrorKind::Capacity,
                self.ring_capacity_message(spec.ring_size),
            );
        };
        // Re-created within one change (e.g. a new ring size): keep the entry, do not delete it.
        self.pending.removed_vips.retain(|k| *k != key);
        self.vips.push(VipState {
            id,
            key,
            spec,
            regions: [a, b],
            active: adopted.map(|_| 0),
            members: Vec::new(),
            rebuilds: 0,
            slot_counts: Default::default(),
            published_weights: Default::default(),
            failing_open: false,
        });
        self.pending.vips.insert(id);
        Ok(id)
    }

    fn ring_capacity_message(&self, size: u32) -> String {
        format!(
            "no room for two more rings of {size} slots (ring table: {} slots; raise \
             dataplane.ring_slots)",
            self.ring_capacity
        )
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
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return err(ErrorKind::Invalid, format!("{addr} cannot be a backend"));
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

    fn acquire_backend(&mut self, addr: IpAddr) -> Result<u32, StateError> {
        if let Some(id) = self
            .backends
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.address == addr))
        {
            self.backends[id].as_mut().expect("found").refs += 1;
            return Ok(id as u32);
        }
        let n = MAX_BACKENDS;
        let adopted = self.adopted_backend_id(addr);
        let fresh = (0..n).map(|k| (self.next_backend + k) % n).find(|&id| {
            self.backends.get(id as usize).is_none_or(Option::is_none) && !self.backend_id_held(id)
        });
        let Some(id) = adopted.or(fresh) else {
            return err(
                ErrorKind::Capacity,
                format!("all {n} backend slots are in use"),
            );
        };
        if self.backends.len() <= id as usize {
            self.backends.resize(id as usize + 1, None);
        }
        self.backends[id as usize] = Some(BackendSlot {
            address: addr,
            refs: 1,
            disabled: false,
            health: BackendHealth::default(),
        });
        if adopted.is_none() {
            self.next_backend = (id + 1) % n;
        }
        self.pending.backends.insert(id);
        Ok(id)
    }

    fn release_backend(&mut self, id: u32) {
        let slot = self.backends[id as usize].as_mut().expect("live backend");
        slot.refs -= 1;
        if slot.refs == 0 {
            self.backends[id as usize] = None;
            self.pending.backends.insert(id);
        }
    }

    /// Take the range [start, start+len) out of the free list (false if not entirely free).
    fn reserve_slots(&mut self, start: u32, len: u32) -> bool {
        let end = start as u64 + len as u64;
        let Some(i) = self
            .free_slots
            .iter()
            .position(|&(s, l)| s <= start && end <= s as u64 + l as u64)
        else {
            return false;
        };
        let (s, l) = self.free_slots.remove(i);
        let after = (s as u64 + l as u64 - end) as u32;
        if after > 0 {
            self.free_slots.insert(i, (end as u32, after));
        }
        if start > s {
            self.free_slots.insert(i, (s, start - s));
        }
        true
    }

    fn alloc_slots(&mut self, len: u32) -> Option<u32> {
        let i = self.free_slots.iter().position(|&(_, l)| l >= len)?;
        let (start, l) = self.free_slots[i];
        if l == len {
            self.free_slots.remove(i);
        } else {
            self.free_slots[i] = (start + len, l - len);
        }
        Some(start)
    }

    fn free_range(&mut self, start: u32, len: u32) {
        let i = self.free_slots.partition_point(|&(s, _)| s < start);
        self.free_slots.insert(i, (start, len));
        // Merge with neighbours so large rings fit again after churn.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.free_slots.len());
        for &(s, l) in &self.free_slots {
            match merged.last_mut() {
                Some((ps, pl)) if *ps + *pl == s => *pl += l,
                _ => merged.push((s, l)),
            }
        }
        self.free_slots = merged;
    }

    /// The Maglev ring the VIP should have now, with the weights it is built from.
    pub fn ring(&self, vip: &VipState, now: std::time::Instant) -> lifecycle::Ring {
        let weights = self.ring_weights(vip, now);
        let identities: Vec<[u8; 16]> = vip
            .members
            .iter()
            .map(|m| identity(self.backend_address(m.backend_id)))
            .collect();
        let members: Vec<maglev::Member<'_>> = vip
            .members
            .iter()
            .zip(&identities)
            .map(|(m, ident)| maglev::Member {
                id: m.backend_id,
                identity: ident,
                weight: weights.weights.get(&m.backend_id).copied().unwrap_or(0),
            })
            .collect();
        lifecycle::Ring {
            slots: maglev::build(&members, vip.spec.ring_size),
            weights: weights.weights,
            failing_open: weights.failing_open,
        }
    }

    /// The `BACKENDS` slot value for backend `id` (cleared if unused).
    pub fn backend_value(&self, id: u32) -> Backend {
        match self.backends.get(id as usize).and_then(Option::as_ref) {
            Some(s) => Backend {
                addr: ip_words(s.address),
                family: family(s.address),
                flags: BACKEND_F_VALID | self.down_flag(id),
                _pad: [0; 2],
            },
            None => Backend::default(),
        }
    }

    /// The `VIPS` value for a VIP whose ring half `half` is the one to read.
    pub fn vip_value(vip: &VipState, half: usize) -> VipMeta {
        VipMeta {
            vip_id: vip.id,
            flags: 0,
            ring_size: vip.spec.ring_size,
            ring_base: vip.regions[half],
            // The kernel's buckets are per CPU: share the VIP's rate among them.
            new_flow_rate: vip.spec.new_flow_limit.div_ceil(cpus()),
            _pad: 0,
        }
    }

    /// Take what has to be written; the caller writes it (see `reconcile::sync`).
    pub fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// The host-wide settings changed.
    pub fn mark_config_pending(&mut self) {
        self.pending.config = true;
    }

    /// Mark everything for writing (a fresh data plane).
    pub fn mark_all_pending(&mut self) {
        self.pending.config = true;
        self.pending.backends = self.backends().map(|(id, _)| id).collect();
        self.pending.vips = self.vips.iter().map(|v| v.id).collect();
    }

    /// Go back to this state (the one before a change) after the change's state, `failed`, was
    /// partly written to the maps: the next sync writes this state over whatever got written.
    /// Ring halves follow the maps (a VIP the failed sync flipped keeps its new active half, so
    /// this ring goes into the other one, as any publish does); VIPs and backends only the
    /// failed state had are removed and cleared.
    pub fn recover_from(&mut self, failed: &State) {
        for v in &mut self.vips {
            if let Some(f) = failed.vips.iter().find(|f| f.key == v.key)
                && f.regions == v.regions
            {
                v.active = f.active;
                v.rebuilds = f.rebuilds;
            }
        }
        for f in &failed.vips {
            if self.vip(&f.key).is_err() {
                self.pending.removed_vips.push(f.key);
            }
        }
        self.published_addresses = failed.published_addresses.clone();
        self.mark_all_pending();
        for (id, _) in failed.backends() {
            self.pending.backends.insert(id);
        }
    }

    /// Put back what a failed write did not finish, so the next sync retries it.
    pub fn restore_pending(&mut self, p: Pending) {
        self.pending.config |= p.config;
        self.pending.backends.extend(p.backends);
        self.pending.vips.extend(p.vips);
        self.pending.removed_vips.extend(p.removed_vips);
    }

    pub fn vip_by_id_mut(&mut self, id: u32) -> Option<&mut VipState> {
        self.vips.iter_mut().find(|v| v.id == id)
    }
}

fn check_policy(spec: &VipSpec) -> Result<(), StateError> {
    validate_policy(&spec.policy).map_err(|e| StateError {
        kind: ErrorKind::Invalid,
        message: format!("{}: {e:#}", spec.name()),
    })?;
    resolve_check(spec.policy.health_check.as_ref(), None, spec.port)
        .map(drop)
        .map_err(|e| StateError {
            kind: ErrorKind::Invalid,
            message: format!("{}: {e:#}", spec.name()),
        })
}

fn check_member_policy(
    spec: &VipSpec,
    over: Option<&HealthCheckConfig>,
    addr: IpAddr,
) -> Result<(), StateError> {
    resolve_check(spec.policy.health_check.as_ref(), over, spec.port)
        .map(drop)
        .map_err(|e| StateError {
            kind: ErrorKind::Invalid,
            message: format!("backend {addr} of {}: {e:#}", spec.name()),
        })
}

/// CPUs the kernel may run the program on (per-CPU maps have one slot each).
fn cpus() -> u32 {
    static CPUS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| aya::util::nr_cpus().map_or(1, |n| n.max(1) as u32))
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
