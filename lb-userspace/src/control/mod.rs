//! The control task: the single owner of the desired state and the data plane's maps. API
//! handlers send it [`Request`]s over a channel and await the reply, so changes are applied one
//! at a time, in order, by one code path (validate → change state → sync maps → persist).
mod changes;
mod explain;
mod lifecycle;
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
    /// Prometheus text exposition.
    Metrics,
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
    /// The configuration file `config reload` re-reads.
    pub config_path: std::path::PathBuf,
    pub interface: String,
    pub xdp_mode: String,
    pub started: Instant,
}

pub struct Control {
    pub dp: Dataplane,
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
pub fn spawn(
    mut control: Control,
    sample_every: Duration,
) -> (Handle, tokio::task::JoinHandle<Control>) {
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

impl Control {
    pub fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::ListVips => Ok(json(&self.vip_views())),
            Request::ShowVip(v) => self.vip_view_of(&v).map(|v| json(&v)),
            Request::Status => Ok(json(&self.status_view())),
            Request::Stats => Ok(json(&self.stats_view())),
            Request::Explain(e) => self.explain(&e).map(|v| json(&v)),
            Request::Metrics => Ok(serde_json::Value::String(self.metrics_text())),
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

    /// Write pending changes to the maps and persist the desired state.
    fn commit(&mut self) -> Result<(), ApiError> {
        crate::reconcile::sync(&mut self.dp, &mut self.state, &self.encap).map_err(|e| {
            error!("writing the maps failed (will retry with the next change): {e:#}");
            ApiError::internal(&e)
        })?;
        if let Some(store) = &self.store {
            store.save(&self.state).map_err(|e| {
                error!("the change is live but could not be persisted: {e:#}");
                ApiError::internal(&e.context("the change is live but was not persisted"))
            })?;
        }
        Ok(())
    }
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("API views serialize")
}
