//! Requests that change the desired state: each validates, changes, syncs the maps and persists,
//! or changes nothing.
use std::net::IpAddr;

use lb_common::limits::DEFAULT_RING_SIZE;
use log::info;

use super::{ApiError, Control, Reply, json};
use crate::{
    api::types::{AddBackend, AddVip, ConfigRequest, DiffView, UpdateBackend, VipRef},
    config::{Config, DEFAULT_WEIGHT},
    state::{State, StateError, VipSpec},
    wire::vip_key,
};

fn key(v: &VipRef) -> lb_common::vip::VipKey {
    vip_key(v.address, v.port, v.protocol)
}

/// One step of turning the running state into a configuration's.
enum Op {
    AddVip(VipSpec),
    RemoveVip(VipSpec),
    AddBackend(VipSpec, IpAddr, u16),
    RemoveBackend(VipSpec, IpAddr),
    SetWeight(VipSpec, IpAddr, u16, u16),
    SetFlowLimit(VipSpec, u32, u32),
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::AddVip(v) => format!("+ vip {} (ring size {})", v.name(), v.ring_size),
            Op::RemoveVip(v) => format!("- vip {}", v.name()),
            Op::AddBackend(v, a, w) => format!("+ backend {a} (weight {w}) to {}", v.name()),
            Op::RemoveBackend(v, a) => format!("- backend {a} from {}", v.name()),
            Op::SetWeight(v, a, from, to) => {
                format!("~ backend {a} of {}: weight {from} -> {to}", v.name())
            }
            Op::SetFlowLimit(v, from, to) => {
                format!("~ vip {}: new-flow limit {from} -> {to}", v.name())
            }
        }
    }

    fn apply(&self, s: &mut State) -> Result<(), StateError> {
        match self {
            Op::AddVip(v) => s.add_vip(v.clone()).map(drop),
            Op::RemoveVip(v) => s.remove_vip(&v.key()).map(drop),
            Op::AddBackend(v, a, w) => s.add_backend(&v.key(), *a, *w).map(drop),
            Op::RemoveBackend(v, a) => s.remove_backend(&v.key(), *a),
            Op::SetWeight(v, a, _, w) => s.update_member(&v.key(), *a, Some(*w), None).map(drop),
            Op::SetFlowLimit(v, _, to) => s.set_new_flow_limit(&v.key(), *to),
        }
    }
}

/// The steps from `current` to `target`, removals first so freed ring space is reused.
fn diff(current: &Config, target: &Config) -> Vec<Op> {
    let spec = |v: &crate::config::Vip| VipSpec {
        address: v.address,
        port: v.port,
        protocol: v.protocol,
        ring_size: v.ring_size,
        new_flow_limit: v.new_flow_limit,
    };
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
                        .map(|b| Op::AddBackend(spec(t), b.address, b.weight)),
                );
            }
            Some(t) => {
                if t.new_flow_limit != cur.new_flow_limit {
                    adds.push(Op::SetFlowLimit(
                        spec(cur),
                        cur.new_flow_limit,
                        t.new_flow_limit,
                    ));
                }
                for b in &cur.backends {
                    match t.backends.iter().find(|tb| tb.address == b.address) {
                        None => removes.push(Op::RemoveBackend(spec(cur), b.address)),
                        Some(tb) if tb.weight != b.weight => {
                            adds.push(Op::SetWeight(spec(cur), b.address, b.weight, tb.weight))
                        }
                        Some(_) => {}
                    }
                }
                for tb in &t.backends {
                    if !cur.backends.iter().any(|b| b.address == tb.address) {
                        adds.push(Op::AddBackend(spec(t), tb.address, tb.weight));
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
                    .map(|b| Op::AddBackend(spec(t), b.address, b.weight)),
            );
        }
    }
    removes.extend(adds);
    removes
}

impl Control {
    pub(super) fn add_vip(&mut self, a: AddVip) -> Reply {
        let spec = VipSpec {
            address: a.vip.address,
            port: a.vip.port,
            protocol: a.vip.protocol,
            ring_size: a.ring_size.unwrap_or(DEFAULT_RING_SIZE),
            new_flow_limit: a.new_flow_limit.unwrap_or(0),
        };
        self.state.add_vip(spec)?;
        self.commit()?;
        info!("API: added VIP {}", a.vip);
        self.vip_view_of(&a.vip).map(|v| json(&v))
    }

    pub(super) fn remove_vip(&mut self, v: &VipRef) -> Reply {
        let removed = self.state.remove_vip(&key(v))?;
        self.commit()?;
        info!("API: removed VIP {v}");
        Ok(json(&self.view_of_removed(&removed)))
    }

    pub(super) fn add_backend(&mut self, v: &VipRef, b: AddBackend) -> Reply {
        let weight = b.weight.unwrap_or(DEFAULT_WEIGHT);
        self.state.add_backend(&key(v), b.address, weight)?;
        self.commit()?;
        info!("API: added backend {} (weight {weight}) to {v}", b.address);
        self.vip_view_of(v).map(|v| json(&v))
    }

    pub(super) fn remove_backend(&mut self, v: &VipRef, addr: IpAddr) -> Reply {
        self.state.remove_backend(&key(v), addr)?;
        self.commit()?;
        info!("API: removed backend {addr} from {v}");
        self.vip_view_of(v).map(|v| json(&v))
    }

    pub(super) fn update_backend(&mut self, v: &VipRef, addr: IpAddr, u: UpdateBackend) -> Reply {
        if u.weight.is_none() && u.draining.is_none() {
            return Err(ApiError::bad_request(
                "nothing to change: give weight and/or draining",
            ));
        }
        let m = self
            .state
            .update_member(&key(v), addr, u.weight, u.draining)?;
        self.commit()?;
        info!(
            "API: backend {addr} of {v}: weight {}{}",
            m.weight,
            if m.draining { ", draining" } else { "" }
        );
        self.vip_view_of(v).map(|v| json(&v))
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
        if encap_changed {
            self.encap = crate::daemon::resolve_encap(&next, &self.info.interface)
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            next.mark_config_pending();
        }
        self.state = next;
        self.commit()?;
        info!("config apply: {} change(s)", changes.len());
        Ok(DiffView {
            changes,
            applied: true,
        })
    }
}

impl ApiError {
    fn prefixed(mut self, what: &str) -> ApiError {
        self.message = format!("{what}: {}", self.message);
        self
    }
}
