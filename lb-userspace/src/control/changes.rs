//! Requests that change the desired state: each validates, changes, syncs the maps and persists,
//! or changes nothing.
use std::net::IpAddr;

use lb_common::limits::DEFAULT_RING_SIZE;
use log::info;

use super::{ApiError, Control, Reply, json};
use crate::maps::MapStore;
use crate::{
    api::types::{AddBackend, AddVip, ConfigRequest, DiffView, UpdateBackend, VipRef},
    config::{BackendRef, Config, DEFAULT_WEIGHT, HealthCheckConfig},
    state::{DrainRequest, State, StateError, VipSpec},
    wire::vip_key,
};

fn key(v: &VipRef) -> lb_common::vip::VipKey {
    vip_key(v.address, v.port, v.protocol)
}

/// One step of turning the running state into a configuration's.
enum Op {
    AddVip(VipSpec),
    RemoveVip(VipSpec),
    AddBackend(VipSpec, BackendRef),
    RemoveBackend(VipSpec, IpAddr),
    SetWeight(VipSpec, IpAddr, u16, u16),
    /// New-flow limit or policy (checks, slow start, drain timeout, all-down), from → to.
    UpdateVip(VipSpec, VipSpec),
    SetBackendCheck(VipSpec, IpAddr, Option<HealthCheckConfig>),
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::AddVip(v) => format!("+ vip {} (ring size {})", v.name(), v.ring_size),
            Op::RemoveVip(v) => format!("- vip {}", v.name()),
            Op::AddBackend(v, b) => format!(
                "+ backend {} (weight {}) to {}",
                b.address,
                b.weight,
                v.name()
            ),
            Op::RemoveBackend(v, a) => format!("- backend {a} from {}", v.name()),
            Op::SetWeight(v, a, from, to) => {
                format!("~ backend {a} of {}: weight {from} -> {to}", v.name())
            }
            Op::UpdateVip(from, to) => {
                let mut what = Vec::new();
                if from.new_flow_limit != to.new_flow_limit {
                    what.push(format!(
                        "new-flow limit {} -> {}",
                        from.new_flow_limit, to.new_flow_limit
                    ));
                }
                let (a, b) = (&from.policy, &to.policy);
                if a.health_check != b.health_check {
                    what.push("health check".into());
                }
                if a.slow_start != b.slow_start {
                    what.push(format!(
                        "slow start {:?} -> {:?}",
                        a.slow_start, b.slow_start
                    ));
                }
                if a.drain_timeout != b.drain_timeout {
                    what.push(format!(
                        "drain timeout {:?} -> {:?}",
                        a.drain_timeout, b.drain_timeout
                    ));
                }
                if a.all_backends_down != b.all_backends_down {
                    what.push(format!(
                        "all backends down: {} -> {}",
                        a.all_backends_down, b.all_backends_down
                    ));
                }
                format!("~ vip {}: {}", to.name(), what.join(", "))
            }
            Op::SetBackendCheck(v, a, _) => {
                format!("~ backend {a} of {}: health check override", v.name())
            }
        }
    }

    fn apply(&self, s: &mut State) -> Result<(), StateError> {
        match self {
            Op::AddVip(v) => s.add_vip(v.clone()).map(drop),
            Op::RemoveVip(v) => s.remove_vip(&v.key()).map(drop),
            Op::AddBackend(v, b) => {
                s.add_backend(&v.key(), b.address, b.weight)?;
                s.set_member_check(&v.key(), b.address, b.health_check.clone())
            }
            Op::RemoveBackend(v, a) => s.remove_backend(&v.key(), *a),
            Op::SetWeight(v, a, _, w) => s.update_member(&v.key(), *a, Some(*w), None).map(drop),
            Op::UpdateVip(_, to) => s.update_vip(to),
            Op::SetBackendCheck(v, a, c) => s.set_member_check(&v.key(), *a, c.clone()),
        }
    }
}

/// The steps from `current` to `target`, removals first so freed ring space is reused.
fn diff(current: &Config, target: &Config) -> Vec<Op> {
    let spec = VipSpec::of;
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    for cur in &current.vips {
        match target.vips.iter().find(|t| t.key() == cur.key()) {
            None => removes.push(Op::RemoveVip(spec(cur))),
            // A new table size means a new VIP entry and rings.
            Some(t) if t.ring_size != cur.ring_size => {
                removes.push(Op::RemoveVip(spec(cur)));
                adds.push(Op::AddVip(spec(t)));
                adds.extend(
                    t.backends
                        .iter()
                        .map(|b| Op::AddBackend(spec(t), b.clone())),
                );
            }
            Some(t) => {
                if spec(t) != spec(cur) {
                    adds.push(Op::UpdateVip(spec(cur), spec(t)));
                }
                for b in &cur.backends {
                    match t.backends.iter().find(|tb| tb.address == b.address) {
                        None => removes.push(Op::RemoveBackend(spec(cur), b.address)),
                        Some(tb) => {
                            if tb.weight != b.weight {
                                adds.push(Op::SetWeight(spec(cur), b.address, b.weight, tb.weight));
                            }
                            if tb.health_check != b.health_check {
                                adds.push(Op::SetBackendCheck(
                                    spec(t),
                                    b.address,
                                    tb.health_check.clone(),
                                ));
                            }
                        }
                    }
                }
                for tb in &t.backends {
                    if !cur.backends.iter().any(|b| b.address == tb.address) {
                        adds.push(Op::AddBackend(spec(t), tb.clone()));
                    }
                }
            }
        }
    }
    for t in &target.vips {
        if !current.vips.iter().any(|c| c.key() == t.key()) {
            adds.push(Op::AddVip(spec(t)));
            adds.extend(
                t.backends
                    .iter()
                    .map(|b| Op::AddBackend(spec(t), b.clone())),
            );
        }
    }
    removes.extend(adds);
    removes
}

impl<M: MapStore> Control<M> {
    pub(super) fn add_vip(&mut self, a: AddVip) -> Reply {
        let spec = VipSpec {
            address: a.vip.address,
            port: a.vip.port,
            protocol: a.vip.protocol,
            ring_size: a.ring_size.unwrap_or(DEFAULT_RING_SIZE),
            new_flow_limit: a.new_flow_limit.unwrap_or(0),
            policy: a.policy.unwrap_or_default(),
        };
        self.change(|s| s.add_vip(spec))?;
        info!("API: added VIP {}", a.vip);
        self.vip_view_of(&a.vip).map(|v| json(&v))
    }

    pub(super) fn remove_vip(&mut self, v: &VipRef) -> Reply {
        let removed = self.change(|s| s.remove_vip(&key(v)))?;
        info!("API: removed VIP {v}");
        Ok(json(&self.view_of_removed(&removed)))
    }

    pub(super) fn add_backend(&mut self, v: &VipRef, b: AddBackend) -> Reply {
        let weight = b.weight.unwrap_or(DEFAULT_WEIGHT);
        self.change(|s| {
            s.add_backend(&key(v), b.address, weight)?;
            s.set_member_check(&key(v), b.address, b.health_check)
        })?;
        info!("API: added backend {} (weight {weight}) to {v}", b.address);
        self.vip_view_of(v).map(|v| json(&v))
    }

    pub(super) fn remove_backend(&mut self, v: &VipRef, addr: IpAddr) -> Reply {
        self.change(|s| s.remove_backend(&key(v), addr))?;
        info!("API: removed backend {addr} from {v}");
        self.vip_view_of(v).map(|v| json(&v))
    }

    pub(super) fn update_backend(&mut self, v: &VipRef, addr: IpAddr, u: UpdateBackend) -> Reply {
        if u.weight.is_none() && u.draining.is_none() {
            return Err(ApiError::bad_request(
                "nothing to change: give weight and/or draining",
            ));
        }
        if u.drain_timeout.is_some() && u.draining != Some(true) {
            return Err(ApiError::bad_request(
                "drain_timeout goes with draining: true",
            ));
        }
        let vip = self.state.vip(&key(v))?;
        let timeout = u.drain_timeout.unwrap_or(vip.spec.policy.drain_timeout);
        if timeout.is_zero() || timeout > std::time::Duration::from_secs(7 * 86400) {
            return Err(ApiError::bad_request(
                "drain timeout must be between 1s and 7 days",
            ));
        }
        let drain = u.draining.map(|d| {
            if d {
                DrainRequest::Start { timeout }
            } else {
                DrainRequest::Cancel
            }
        });
        let was = {
            let vip = self.state.vip(&key(v))?;
            vip.members
                .iter()
                .find(|m| self.state.backend_address(m.backend_id) == addr)
                .map(|m| self.state.member_state(vip, m, self.state.clock.now()).0)
        };
        let m = self.change(|s| s.update_member(&key(v), addr, u.weight, drain))?;
        let now = self.state.clock.now();
        let vip = self.state.vip(&key(v))?;
        let (is, _) = self.state.member_state(vip, &m, now);
        info!(
            "API: backend {addr} of {v}: weight {}{}",
            m.weight,
            if m.draining() {
                format!(", draining (timeout {timeout:?})")
            } else {
                String::new()
            }
        );
        if let Some(was) = was
            && was != is
        {
            let why = if m.draining() {
                "operator drain"
            } else {
                "operator"
            };
            self.log_transition(
                &v.to_string(),
                &addr.to_string(),
                was.name(),
                is.name(),
                why,
            );
        }
        self.vip_view_of(v).map(|v| json(&v))
    }

    pub(super) fn set_backend_disabled(&mut self, addr: IpAddr, disabled: bool) -> Reply {
        let now = self.state.clock.now();
        let before = self.member_states(addr, now);
        if self.change(|s| s.set_disabled(addr, disabled))? {
            info!(
                "API: backend {addr} {}",
                if disabled { "disabled" } else { "enabled" }
            );
            for ((vip, was), (_, is)) in before.iter().zip(self.member_states(addr, now)) {
                if *was != is {
                    self.log_transition(vip, &addr.to_string(), was.name(), is.name(), "operator");
                }
            }
        }
        Ok(json(&self.vip_views()))
    }

    /// (VIP name, state) of every membership of a backend address.
    fn member_states(
        &self,
        addr: IpAddr,
        now: std::time::Instant,
    ) -> Vec<(String, crate::state::MemberState)> {
        let mut out = Vec::new();
        for v in &self.state.vips {
            for m in &v.members {
                if self.state.backend_address(m.backend_id) == addr {
                    out.push((v.spec.name(), self.state.member_state(v, m, now).0));
                }
            }
        }
        out
    }

    /// Show (and with `apply`, make) the changes from the running state to a configuration.
    /// The whole configuration is validated, and all of its changes are tried on a copy of the
    /// state first: it is applied entirely or not at all.
    pub(super) fn config_diff(
        &mut self,
        req: &ConfigRequest,
        apply: bool,
    ) -> Result<DiffView, ApiError> {
        let target = Config::parse(&req.toml)
            .map_err(|e| ApiError::bad_request(format!("invalid configuration: {e:#}")))?;
        let current = self.state.to_config();
        if target.dataplane.flow_table_size != current.dataplane.flow_table_size
            || target.dataplane.ring_slots != current.dataplane.ring_slots
        {
            return Err(ApiError::bad_request(
                "flow_table_size and ring_slots size kernel maps: changing them needs a restart",
            ));
        }
        let ops = diff(&current, &target);
        let mut changes: Vec<String> = ops.iter().map(Op::describe).collect();
        let encap_changed = target.dataplane.encap_source_v4 != current.dataplane.encap_source_v4
            || target.dataplane.encap_source_v6 != current.dataplane.encap_source_v6;
        if encap_changed {
            changes.push("~ dataplane encap sources".into());
        }
        if !apply || changes.is_empty() {
            return Ok(DiffView {
                changes,
                applied: false,
            });
        }
        let mut next = self.state.clone();
        for op in &ops {
            op.apply(&mut next)
                .map_err(|e| ApiError::from(e).prefixed(&op.describe()))?;
        }
        next.options = target.dataplane.clone();
        let mut encap = self.encap;
        if encap_changed {
            encap = crate::daemon::resolve_encap(&next, &self.info.interface)
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            next.mark_config_pending();
        }
        self.commit_with(next, encap)?;
        info!("config apply: {} change(s)", changes.len());
        Ok(DiffView {
            changes,
            applied: true,
        })
    }
}

impl<M: MapStore> Control<M> {
    /// Re-read the configuration file and apply it; the state file then belongs to the new
    /// file (a restart with it restores API changes made after the reload).
    pub(super) fn config_reload(&mut self) -> Result<DiffView, ApiError> {
        let path = self.info.config_path.clone();
        let toml = std::fs::read_to_string(&path).map_err(|e| {
            ApiError::bad_request(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let view = self
            .config_diff(&ConfigRequest { toml: toml.clone() }, true)
            .map_err(|e| e.prefixed(&format!("reloading {}", path.display())))?;
        if let Some(store) = &mut self.store {
            store.set_config(&toml);
            store
                .save(&self.state)
                .map_err(|e| ApiError::internal(&e))?;
        }
        info!(
            "reloaded {}: {} change(s)",
            path.display(),
            view.changes.len()
        );
        Ok(view)
    }
}

impl ApiError {
    fn prefixed(mut self, what: &str) -> ApiError {
        self.message = format!("{what}: {}", self.message);
        self
    }
}
