//! What the maps should hold for the desired state: each VIP's Maglev ring and `VIPS` value,
//! and each backend's `BACKENDS` slot.
use std::net::IpAddr;

use lb_common::{
    backend::{BACKEND_F_VALID, Backend},
    vip::VipMeta,
};

use super::{State, VipState, lifecycle};
use crate::{
    maglev,
    wire::{family, ip_words},
};

impl State {
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
                flags: BACKEND_F_VALID | self.down_flag(id) | s.outlier.flag(),
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
