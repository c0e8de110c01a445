//! Traffic counters: read from the per-CPU maps (summed over CPUs), sampled periodically for
//! rates, and exposed as `stats` and as Prometheus metrics.
use std::{collections::HashMap, time::Instant};

use lb_common::stats::{Counter, STAT_COUNT, STAT_NAMES};
use log::warn;

use super::Control;
use crate::maps::MapStore;
use crate::{
    api::types::{StatsView, TrafficView},
    metrics,
};

/// Counter values at one instant.
#[derive(Clone, Debug)]
pub struct Sample {
    at: Instant,
    pub vips: HashMap<u32, Counter>,
    pub backends: HashMap<u32, Counter>,
    pub events: [u64; STAT_COUNT as usize],
}

/// The last two periodic samples: their difference gives the rates.
#[derive(Default)]
pub struct Sampler {
    previous: Option<Sample>,
    latest: Option<Sample>,
}

impl<M: MapStore> Control<M> {
    pub fn read_sample(&self) -> anyhow::Result<Sample> {
        let mut vips = HashMap::new();
        for v in &self.state.vips {
            vips.insert(v.id, self.maps.vip_stats(v.id)?);
        }
        let mut backends = HashMap::new();
        for (id, _) in self.state.backends() {
            backends.insert(id, self.maps.backend_stats(id)?);
        }
        Ok(Sample {
            at: Instant::now(),
            vips,
            backends,
            events: self.maps.global_stats()?,
        })
    }

    /// Called periodically by the control task.
    pub fn sample(&mut self) {
        match self.read_sample() {
            Ok(s) => {
                self.sampler.previous = self.sampler.latest.take();
                self.sampler.latest = Some(s);
            }
            Err(e) => warn!("reading counters: {e:#}"),
        }
    }

    pub(super) fn stats_view(&self) -> StatsView {
        let now = match self.read_sample() {
            Ok(s) => s,
            Err(e) => {
                warn!("reading counters: {e:#}");
                return StatsView {
                    interval_seconds: 0.0,
                    vips: Default::default(),
                    backends: Default::default(),
                    events: Default::default(),
                };
            }
        };
        let rates = match (&self.sampler.previous, &self.sampler.latest) {
            (Some(a), Some(b)) => Some((a, b, (b.at - a.at).as_secs_f64())),
            _ => None,
        };
        let view = |id: u32, pick: fn(&Sample) -> &HashMap<u32, Counter>| -> TrafficView {
            let c = pick(&now).get(&id).copied().unwrap_or_default();
            let mut t = TrafficView {
                packets: c.packets,
                bytes: c.bytes,
                new_flows: c.new_flows,
                ..TrafficView::default()
            };
            if let Some((a, b, dt)) = rates
                && dt > 0.0
            {
                let (a, b) = (
                    pick(a).get(&id).copied().unwrap_or_default(),
                    pick(b).get(&id).copied().unwrap_or_default(),
                );
                t.packets_per_second = b.packets.saturating_sub(a.packets) as f64 / dt;
                t.bits_per_second = 8.0 * b.bytes.saturating_sub(a.bytes) as f64 / dt;
                t.new_flows_per_second = b.new_flows.saturating_sub(a.new_flows) as f64 / dt;
            }
            t
        };
        StatsView {
            interval_seconds: rates.map_or(0.0, |r| r.2),
            vips: self
                .state
                .vips
                .iter()
                .map(|v| (v.spec.name(), view(v.id, |s| &s.vips)))
                .collect(),
            backends: self
                .state
                .backends()
                .map(|(id, addr)| (addr.to_string(), view(id, |s| &s.backends)))
                .collect(),
            events: STAT_NAMES
                .iter()
                .zip(now.events)
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        }
    }

    /// What `/metrics` describes besides the counters: a copy, cheap to take, rendered
    /// elsewhere (see [`crate::metrics`]).
    pub(super) fn metrics_snapshot(&self) -> metrics::Snapshot {
        let now = self.state.clock.now();
        let mut snap = metrics::Snapshot::default();
        for v in &self.state.vips {
            let name = v.spec.name();
            for m in &v.members {
                let (st, _) = self.state.member_state(v, m, now);
                snap.members.push(metrics::MemberGauge {
                    vip: name.clone(),
                    backend: self.state.backend_address(m.backend_id).to_string(),
                    weight: m.weight,
                    state: st.name().to_string(),
                    flows: (st == crate::state::MemberState::Draining)
                        .then(|| self.member_flows(&v.key, m.backend_id))
                        .flatten(),
                });
            }
            snap.vips.push(metrics::VipGauge {
                all_down: self.state.all_down(v, now),
                name,
                id: v.id,
                rebuilds: v.rebuilds,
            });
        }
        snap.backends = self
            .state
            .backends()
            .map(|(id, a)| (id, a.to_string()))
            .collect();
        snap
    }
}
