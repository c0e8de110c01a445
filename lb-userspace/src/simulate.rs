//! "Which backend gets this flow?" answered in userspace with the kernel's own hash, the same
//! rings the daemon publishes and the same flow-table rules ([`lb_common::flow`],
//! [`lb_common::backend::Backend::fate`]): the one path behind `sheave explain`, online (with the
//! flow table's entry) and offline (from a configuration file), and the parity tests.
use std::{collections::HashMap, net::IpAddr, time::Duration};

use lb_common::{
    backend::{EntryFate, NO_BACKEND},
    flow::{FLOW_TICK_NS, FlowKey, FlowState, Lifetimes, Phase},
    hash::{flow_hash, ring_slot},
    vip::VipKey,
};

use crate::{api::types::ExplainView, state::State};

pub struct Simulator {
    rings: HashMap<VipKey, Vec<u32>>,
    backends: HashMap<u32, IpAddr>,
}

/// The ring's answer for a new flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub hash: u32,
    pub slot: u32,
    pub backend_id: u32,
    pub backend: IpAddr,
}

impl Simulator {
    /// Every VIP's ring as the daemon would publish it now.
    pub fn new(state: &State) -> Simulator {
        Simulator::of(state, |_| true)
    }

    /// Only the ring of the VIP `flow` is addressed to (building a ring costs its size).
    pub fn for_flow(state: &State, flow: &FlowKey) -> Simulator {
        let key = VipKey::of_flow(flow);
        Simulator::of(state, |k| *k == key)
    }

    fn of(state: &State, want: impl Fn(&VipKey) -> bool) -> Simulator {
        let now = state.clock.now();
        Simulator {
            rings: state
                .vips
                .iter()
                .filter(|v| want(&v.key))
                .map(|v| (v.key, state.ring(v, now).slots))
                .collect(),
            backends: state.backends().collect(),
        }
    }

    /// The backend a new flow is scheduled to, or `None` if the flow is not for a VIP or the VIP
    /// has no backend with weight > 0.
    pub fn pick(&self, flow: &FlowKey) -> Option<Pick> {
        let ring = self.rings.get(&VipKey::of_flow(flow))?;
        let hash = flow_hash(flow);
        let slot = ring_slot(hash, ring.len() as u32);
        let backend_id = ring[slot as usize];
        (backend_id != NO_BACKEND).then(|| Pick {
            hash,
            slot,
            backend_id,
            backend: self.backends[&backend_id],
        })
    }
}

/// What the flow table holds for a flow: its entry, and the flow-table clock now.
#[derive(Clone, Copy, Debug)]
pub struct TableEntry {
    pub entry: FlowState,
    pub now_tick: u32,
}

/// Where the flow `flow` (described as `text`) goes and why, or `None` if it is not for a VIP.
/// `table` is the flow table's entry for it (`None`: no entry, or offline, see `offline`).
pub fn explain(
    state: &State,
    flow: &FlowKey,
    text: String,
    table: Option<TableEntry>,
    offline: bool,
) -> Option<ExplainView> {
    let vip = state.vip(&VipKey::of_flow(flow)).ok()?;
    let hash = flow_hash(flow);
    let mut view = ExplainView {
        flow: text,
        vip: vip.spec.name(),
        backend: None,
        backend_id: None,
        source: "none".into(),
        phase: "new".into(),
        hash,
        slot: ring_slot(hash, vip.spec.ring_size),
        ring_size: vip.spec.ring_size,
        reason: String::new(),
    };
    if let Some(t) = table {
        let id = t.entry.backend_id;
        let age =
            Duration::from_nanos(t.now_tick.wrapping_sub(t.entry.last_seen) as u64 * FLOW_TICK_NS);
        let phase = Lifetimes::DEFAULT.phase(flow.proto, &t.entry, t.now_tick);
        view.phase = phase_name(phase).into();
        match state.backend_value(id).fate(t.entry.flags) {
            EntryFate::Keep => {
                view.backend = Some(state.backend_address(id));
                view.backend_id = Some(id);
                view.source = "flow-table".into();
                view.reason = kept_reason(phase, age);
                if phase != Phase::Ended {
                    return Some(view);
                }
                // An ended flow's entry still steers stray packets; a new connection on the
                // tuple is a new flow: say where that goes too.
                view.reason += "; a new connection (SYN) on this tuple goes by the ring: ";
            }
            EntryFate::BackendDown => {
                view.reason = "the flow table names a backend that is down; the next packet is \
                               rescheduled on the ring: "
                    .into();
            }
            EntryFate::Stale => {
                view.reason = "the flow table names a removed backend; the next packet is \
                               rescheduled on the ring: "
                    .into();
            }
            EntryFate::Ejected => {
                view.reason = "a connection attempt the backend never answered, and the backend \
                               is ejected (outlier detection); the next packet is rescheduled \
                               on the ring: "
                    .into();
            }
        }
    }
    let pick = Simulator::for_flow(state, flow).pick(flow);
    let keep_table_answer = view.source == "flow-table";
    match pick {
        None => view.reason += "the VIP has no backend with weight > 0: new flows are dropped",
        Some(p) => {
            if !keep_table_answer {
                view.backend = Some(p.backend);
                view.backend_id = Some(p.backend_id);
                view.source = "ring".into();
            }
            view.reason += &format!(
                "new flow: hash {hash:#010x} -> Maglev slot {} of {} -> {}",
                p.slot, vip.spec.ring_size, p.backend
            );
            if offline {
                view.reason +=
                    " (offline: an established flow keeps the backend in the flow table)";
            }
        }
    }
    Some(view)
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Attempt => "attempt",
        Phase::Active => "established",
        Phase::Closing => "closing",
        Phase::Ended => "ended",
    }
}

fn kept_reason(phase: Phase, age: Duration) -> String {
    let ago = format!("{:.1}s ago", age.as_secs_f64());
    match phase {
        Phase::Active => format!(
            "established flow (last packet {ago}): the flow table keeps it on its backend, \
             whatever the ring says now"
        ),
        Phase::Attempt => format!(
            "connection attempt (a SYN, {ago}): its packets follow the flow table; a SYN with \
             another sequence number is a new connection"
        ),
        Phase::Closing => {
            format!("closing (FIN/RST, last packet {ago}): its last packets follow the flow table")
        }
        Phase::Ended => format!(
            "ended (last packet {ago}, past its idle or closing time): the flow table's entry \
             lingers until evicted and would take a stray packet to its old backend"
        ),
    }
}
