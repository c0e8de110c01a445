//! The control task: the single owner of the desired state and the data plane's maps. API
//! handlers send it [`Request`]s over a channel and await the reply, so changes are applied one
//! at a time, in order, by one code path (validate → change state → sync maps → persist).
mod changes;
mod ejections;
mod explain;
mod lifecycle;
#[cfg(test)]
mod replay;
pub mod stats;
mod views;

use std::time::{Duration, Instant};

use lb_common::config::DataplaneConfig;
use log::{error, info};
use tokio::sync::{mpsc, oneshot};

use crate::{
    api::types::{AddBackend, AddVip, ConfigRequest, ExplainRequest, UpdateBackend, VipRef},
    dataplane::Dataplane,
    health::supervisor::Supervisor,
    maps::MapStore,
    metrics::DaemonMetrics,
    persist::Store,
    state::{ErrorKind, State, StateError},
};

pub use stats::Sampler;

/// What the API asks of the control task.
#[derive(Debug)]
pub enum Request {
    ListVips,
    ShowVip(VipRef),
    AddVip(AddVip),
    RemoveVip(VipRef),
    AddBackend(VipRef, AddBackend),
    RemoveBackend(VipRef, std::net::IpAddr),
    UpdateBackend(VipRef, std::net::IpAddr, UpdateBackend),
    /// Operator disable (`true`) or enable of a backend in every VIP.
    SetBackendDisabled(std::net::IpAddr, bool),
    Status,
    Stats,
    Explain(ExplainRequest),
    ConfigDiff(ConfigRequest),
    ConfigApply(ConfigRequest),
    /// Re-read the daemon's configuration file and apply it (SIGHUP too).
    ConfigReload,
    /// What `/metrics` needs from the state, sent back on its own channel (rendered elsewhere).
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
}

/// An error for the API: an HTTP status and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    pub fn internal(e: &anyhow::Error) -> ApiError {
        ApiError {
            status: 500,
            message: format!("{e:#}"),
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> ApiError {
        let status = match e.kind {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid => 400,
            ErrorKind::Capacity => 507,
        };
        ApiError {
            status,
            message: e.message,
        }
    }
}

pub type Reply = Result<serde_json::Value, ApiError>;

/// Facts about the running daemon shown by `status`.
pub struct DaemonInfo {
    /// Held while the daemon runs: it owns the pinned data plane (see `dataplane::owner`).
    pub pin_lock: Option<crate::dataplane::owner::PinLock>,
    /// The configuration file `config reload` re-reads.
    pub config_path: std::path::PathBuf,
    pub interface: String,
    pub xdp_mode: String,
    pub started: Instant,
}

/// The control task's state, over the data plane's maps `M` (the kernel's in the daemon, a
/// recorder in the replay tests).
pub struct Control<M = Dataplane> {
    pub maps: M,
    pub state: State,
    pub encap: DataplaneConfig,
    pub store: Option<Store>,
    pub info: DaemonInfo,
    pub sampler: Sampler,
    pub api_metrics: std::sync::Arc<DaemonMetrics>,
    pub lifecycle: lifecycle::Lifecycle,
}

/// How often slow-start steps and drains are looked at.
const LIFECYCLE_TICK: Duration = Duration::from_millis(200);

/// The API side's handle on the control task.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<(Request, oneshot::Sender<Reply>)>,
}

impl Handle {
    pub async fn call(&self, req: Request) -> Reply {
        let (tx, rx) = oneshot::channel();
        let gone = || ApiError {
            status: 503,
            message: "sheaved is shutting down".into(),
        };
        self.tx.send((req, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Start the control task; it stops when every [`Handle`] is dropped and gives `Control` back
/// (so the caller can detach the program).
pub fn spawn<M: MapStore + Send + 'static>(
    mut control: Control<M>,
    sample_every: Duration,
) -> (Handle, tokio::task::JoinHandle<Control<M>>) {
    let (tx, mut rx) = mpsc::channel::<(Request, oneshot::Sender<Reply>)>(64);
    let task = tokio::spawn(async move {
        let (report_tx, mut reports) = mpsc::channel(1024);
        control.lifecycle.supervisor =
            Some(Supervisor::new(report_tx, control.api_metrics.clone()));
        control.reconcile_checks();
        let mut tick = tokio::time::interval(sample_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lifecycle_tick = tokio::time::interval(LIFECYCLE_TICK);
        lifecycle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some((req, reply)) = msg else { break };
                    let r = control.handle(req);
                    control.reconcile_checks();
                    let _ = reply.send(r);
                }
                Some(report) = reports.recv() => control.on_health_report(report),
                _ = lifecycle_tick.tick() => control.lifecycle_tick(),
                _ = tick.tick() => control.sample(),
            }
        }
        // Stop the checks before handing the data plane back.
        control.lifecycle.supervisor = None;
        info!("control task stopped");
        control
    });
    (Handle { tx }, task)
}

impl<M: MapStore> Control<M> {
    pub fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::ListVips => Ok(json(&self.vip_views())),
            Request::ShowVip(v) => self.vip_view_of(&v).map(|v| json(&v)),
            Request::Status => Ok(json(&self.status_view())),
            Request::Stats => Ok(json(&self.stats_view())),
            Request::Explain(e) => self.explain(&e).map(|v| json(&v)),
            Request::Metrics(to) => {
                let _ = to.send(self.metrics_snapshot());
                Ok(serde_json::Value::Null)
            }
            Request::ConfigDiff(c) => self.config_diff(&c, false).map(|v| json(&v)),
            Request::ConfigApply(c) => self.config_diff(&c, true).map(|v| json(&v)),
            Request::ConfigReload => self.config_reload().map(|v| json(&v)),
            Request::AddVip(a) => self.add_vip(a),
            Request::RemoveVip(v) => self.remove_vip(&v),
            Request::AddBackend(v, b) => self.add_backend(&v, b),
            Request::RemoveBackend(v, addr) => self.remove_backend(&v, addr),
            Request::UpdateBackend(v, addr, u) => self.update_backend(&v, addr, u),
            Request::SetBackendDisabled(addr, d) => self.set_backend_disabled(addr, d),
        }
    }

    /// Make a change all or nothing: `op` works on a copy of the desired state (a refused
    /// request changes nothing), the copy is written to the maps and persisted, and only then
    /// becomes the running state. If writing or persisting fails, the maps are put back to what
    /// the running state says and the error is returned: the running state, the maps and the
    /// state file stay what they were, and later changes are not held up by this one.
    fn change<T>(
        &mut self,
        op: impl FnOnce(&mut State) -> Result<T, StateError>,
    ) -> Result<T, ApiError> {
        let mut next = self.state.clone();
        let out = op(&mut next)?;
        self.commit(next)?;
        Ok(out)
    }

    /// Write `next` to the maps and persist it, then run it; see [`Control::change`].
    fn commit(&mut self, next: State) -> Result<(), ApiError> {
        self.commit_with(next, self.encap)
    }

    /// [`Control::commit`] with new host-wide settings, which are kept only if it succeeds.
    fn commit_with(&mut self, next: State, encap: DataplaneConfig) -> Result<(), ApiError> {
        let before = std::mem::replace(&mut self.state, next);
        let written = crate::reconcile::sync(&mut self.maps, &mut self.state, &encap)
            .map_err(|e| e.context("writing the maps"));
        let saved = written.and_then(|()| match &self.store {
            Some(store) => store
                .save(&self.state)
                .map_err(|e| e.context("saving the state file")),
            None => Ok(()),
        });
        let Err(e) = saved else {
            self.encap = encap;
            return Ok(());
        };
        error!("change refused, running state kept: {e:#}");
        let failed = std::mem::replace(&mut self.state, before);
        self.state.recover_from(&failed);
        if let Err(again) = crate::reconcile::sync(&mut self.maps, &mut self.state, &self.encap) {
            error!("putting the maps back failed too (retried with the next change): {again:#}");
        }
        Err(ApiError::internal(&e))
    }
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("API views serialize")
}
