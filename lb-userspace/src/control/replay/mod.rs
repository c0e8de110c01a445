//! Replay tests of the control plane, without root: API requests and health-check results are
//! fed to a real [`Control`] whose maps are a [`Recorder`] and whose clock is driven by hand;
//! each step's map writes are compared, exactly and in order, with what it must write. The
//! kernel-facing behaviour of the same writes is covered by the dataplane fixtures; what the
//! control plane decides to write — state, reconcile, drain, slow start, adoption, failures —
//! is covered here, in milliseconds.
mod capacity;
mod drain;
mod health;
mod lifecycle;
mod outlier;
mod restart;
mod writes;

use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Duration};

use lb_common::{
    backend::{BACKEND_F_DOWN, BACKEND_F_EJECTED, BACKEND_F_VALID, NO_BACKEND},
    vip::{VIP_ADDRESS_PROTO, VipKey},
};

use super::{Control, DaemonInfo, Request, Sampler};
use crate::{
    api::types::VipRef,
    clock::Clock,
    config::Config,
    dataplane::pins::Adopted,
    health::{checker::Report, probe::Verdict, spec::CheckSpec, tracker::Tracker},
    maps::recorder::{Recorder, Write},
    metrics::DaemonMetrics,
    reconcile,
    state::{State, dataplane_config},
    wire::{vip_name, words_ip},
};

/// A control task on recorded maps and a manual clock.
pub struct Replay {
    pub control: Control<Recorder>,
    pub clock: Clock,
    /// The check tasks' trackers, one per (backend, check), as the supervisor would run them.
    trackers: HashMap<(IpAddr, CheckSpec), Tracker>,
}

/// Ring slots in the replays' ring table: enough for a few small VIPs.
const RING_SLOTS: u32 = 100_000;

impl Replay {
    /// A daemon started from `config` on an empty data plane.
    pub fn start(config: &str) -> Replay {
        Replay::start_adopting(config, None, Recorder::default())
    }

    /// A daemon started from `config` over the maps a previous daemon left (`maps`, described
    /// by `adopted`), as `daemon::start` does it.
    pub fn start_adopting(config: &str, adopted: Option<&Adopted>, maps: Recorder) -> Replay {
        let cfg = Config::parse(config).expect("a valid replay config");
        let clock = Clock::manual();
        let mut state =
            State::from_config_adopting(&cfg, RING_SLOTS, adopted).expect("a valid state");
        state.clock = clock.clone();
        if let Some(a) = adopted {
            let up: Vec<IpAddr> = a.backends.iter().map(|&(_, addr)| addr).collect();
            state.seed_adopted_health(&up, &a.down, clock.now());
        }
        let encap = dataplane_config(cfg.dataplane.encap_source_v4, cfg.dataplane.encap_source_v6);
        let mut maps = maps;
        reconcile::apply(&mut maps, &mut state, &encap).expect("first write");
        state.finish_adoption();
        reconcile::sync(&mut maps, &mut state, &encap).expect("adoption's removals");
        let control = Control {
            maps,
            state,
            encap,
            store: None,
            info: DaemonInfo {
                pin_lock: None,
                config_path: "/replay/sheave.toml".into(),
                interface: "replay0".into(),
                xdp_mode: "native".into(),
                started: clock.now(),
            },
            sampler: Sampler::default(),
            api_metrics: Arc::new(DaemonMetrics::new()),
            lifecycle: Default::default(),
        };
        Replay {
            control,
            clock,
            trackers: HashMap::new(),
        }
    }

    /// The writes since the last call, one line each (see [`render`]).
    pub fn writes(&mut self) -> Vec<String> {
        let log = self.control.maps.take_log();
        log.iter().map(render).collect()
    }

    /// An API request as the API hands it over, answered as the API would be.
    pub fn call(&mut self, req: Request) -> super::Reply {
        let r = self.control.handle(req);
        self.control.reconcile_checks();
        r
    }

    /// An API request with a JSON body as the CLI sends it, e.g. `("backend", vip, json)`.
    pub fn call_ok(&mut self, req: Request) -> serde_json::Value {
        self.call(req).unwrap_or_else(|e| panic!("refused: {e:?}"))
    }

    /// One result of every check of `backend`, passed through each check's rise/fall tracker
    /// and reported to the control task, as a check task does.
    pub fn probe(&mut self, backend: &str, verdict: Verdict, detail: &str) {
        let backend: IpAddr = backend.parse().expect("an address");
        let wanted: Vec<CheckSpec> = self
            .control
            .state
            .wanted_checks()
            .into_iter()
            .filter(|w| w.backend == backend)
            .map(|w| w.spec)
            .collect();
        assert!(!wanted.is_empty(), "{backend} has no check to probe");
        for spec in wanted {
            let state = &self.control.state;
            let tracker = self
                .trackers
                .entry((backend, spec.clone()))
                .or_insert_with(|| {
                    state
                        .check_start(backend, &spec)
                        .tracker(spec.rise, spec.fall)
                });
            let change = tracker.observe(verdict, detail);
            self.control.on_health_report(Report {
                backend,
                spec,
                detail: detail.into(),
                latency: Duration::from_millis(1),
                change,
            });
        }
    }

    /// Let `by` pass, with the control task's periodic lifecycle work every 200 ms on the way.
    pub fn advance(&mut self, by: Duration) {
        let step = Duration::from_millis(200);
        let mut left = by;
        while !left.is_zero() {
            let d = left.min(step);
            self.clock.advance(d);
            left -= d;
            self.control.lifecycle_tick();
        }
    }

    /// A backend's state in `status`, e.g. `up`, `down`, `draining`.
    pub fn member_state(&self, vip: &str, backend: &str) -> String {
        let status = serde_json::to_value(self.control.status_view()).expect("serializes");
        let vips = status["vips"].as_array().expect("vips");
        let v = vips
            .iter()
            .find(|v| v["name"] == vip)
            .unwrap_or_else(|| panic!("no VIP {vip} in {status:#}"));
        let b = v["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .find(|b| b["address"] == backend)
            .unwrap_or_else(|| panic!("no backend {backend} in {v:#}"));
        b["state"].as_str().expect("a state").to_string()
    }

    /// A backend's reason in `status`, e.g. `ejected: ... back in 30s`.
    pub fn member_reason(&self, vip: &str, backend: &str) -> String {
        let status = serde_json::to_value(self.control.status_view()).expect("serializes");
        status["vips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["name"] == vip)
            .flat_map(|v| v["backends"].as_array().into_iter().flatten())
            .find(|b| b["address"] == backend)
            .and_then(|b| b["reason"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn backend_id(&self, addr: &str) -> u32 {
        self.control
            .state
            .backend_id(addr.parse().expect("an address"))
            .expect("a backend")
    }
}

/// `tcp:198.18.100.1:80` as the API names it.
pub fn vip(s: &str) -> VipRef {
    s.parse().expect("a VIP")
}

/// A map write as a line: what it says, not its bytes.
/// - `config`
/// - `backend #0 198.18.0.21 valid` (`down`, `ejected`, or `cleared`)
/// - `ring @2018 size 1009: #0×505 #1×504` (slots per backend id; `none` for no backend)
/// - `vip tcp 198.18.100.1:80 -> @2018 size 1009` (`address 198.18.100.1` for address entries)
/// - `remove vip tcp 198.18.100.1:80` / `remove address 198.18.100.1`
pub fn render(w: &Write) -> String {
    match w {
        Write::Config(_) => "config".into(),
        Write::Backend(id, b) => {
            if b.flags & BACKEND_F_VALID == 0 {
                format!("backend #{id} cleared")
            } else {
                let state = if b.flags & BACKEND_F_DOWN != 0 {
                    "down"
                } else if b.flags & BACKEND_F_EJECTED != 0 {
                    "ejected"
                } else {
                    "valid"
                };
                format!("backend #{id} {} {state}", words_ip(&b.addr, b.family))
            }
        }
        Write::Ring { base, slots } => {
            let mut counts: std::collections::BTreeMap<u32, u32> = Default::default();
            for &s in slots {
                *counts.entry(s).or_default() += 1;
            }
            let shares: Vec<String> = counts
                .iter()
                .map(|(&id, n)| {
                    if id == NO_BACKEND {
                        format!("none×{n}")
                    } else {
                        format!("#{id}×{n}")
                    }
                })
                .collect();
            format!("ring @{base} size {}: {}", slots.len(), shares.join(" "))
        }
        Write::Vip(k, m) => {
            if k.proto == VIP_ADDRESS_PROTO {
                format!("address {}", words_ip(&k.addr, k.family))
            } else {
                format!(
                    "vip {} -> @{} size {}",
                    vip_name(k),
                    m.ring_base,
                    m.ring_size
                )
            }
        }
        Write::RemoveVip(k) => remove_line(k),
    }
}

fn remove_line(k: &VipKey) -> String {
    if k.proto == VIP_ADDRESS_PROTO {
        format!("remove address {}", words_ip(&k.addr, k.family))
    } else {
        format!("remove vip {}", vip_name(k))
    }
}
