//! "Which backend gets this flow?" answered in userspace with the kernel's own hash and the same
//! rings the daemon publishes: the basis of offline `sheave explain` and of the parity test.
use std::{collections::HashMap, net::IpAddr};

use lb_common::{
    backend::NO_BACKEND,
    flow::FlowKey,
    hash::{flow_hash, ring_slot},
    vip::VipKey,
};

use crate::state::State;

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
    pub fn new(state: &State) -> Simulator {
        Simulator {
            rings: state
                .vips
                .iter()
                .map(|v| (v.key, state.ring(v, std::time::Instant::now()).slots))
                .collect(),
            backends: state.backends().collect(),
        }
    }

    /// The backend a new flow is scheduled to, or `None` if the flow is not for a VIP or the VIP
    /// has no backend with weight > 0.
    pub fn pick(&self, flow: &FlowKey) -> Option<Pick> {
        let key = VipKey {
            addr: flow.dst,
            port: flow.dport,
            proto: flow.proto,
            family: flow.family,
        };
        let ring = self.rings.get(&key)?;
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
