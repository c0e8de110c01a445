//! Keeps exactly the wanted check tasks running: started when a VIP wants a check of a backend,
//! aborted when none does any more (an exec probe's child is killed with its task).
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use log::info;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    checker::{self, Report},
    tracker::Start,
};
use crate::{metrics::DaemonMetrics, state::WantedCheck};

pub struct Supervisor {
    tasks: HashMap<WantedCheck, JoinHandle<()>>,
    reports: mpsc::Sender<Report>,
    metrics: Arc<DaemonMetrics>,
}

impl Supervisor {
    pub fn new(reports: mpsc::Sender<Report>, metrics: Arc<DaemonMetrics>) -> Supervisor {
        Supervisor {
            tasks: HashMap::new(),
            reports,
            metrics,
        }
    }

    /// Start missing checks (from what `start` says the state knows of each), stop unwanted
    /// ones. Needs a tokio runtime.
    pub fn reconcile(
        &mut self,
        wanted: &HashSet<WantedCheck>,
        start: impl Fn(&WantedCheck) -> Start,
    ) {
        self.tasks.retain(|w, task| {
            let keep = wanted.contains(w);
            if !keep {
                task.abort();
                info!("health: stopped {} check of {}", w.spec.kind(), w.backend);
            }
            keep
        });
        for w in wanted {
            if self.tasks.contains_key(w) {
                continue;
            }
            info!(
                "health: {} check of {} port {} every {:?} (rise {}, fall {})",
                w.spec.kind(),
                w.backend,
                w.spec.port,
                w.spec.interval,
                w.spec.rise,
                w.spec.fall
            );
            let task = tokio::spawn(checker::run(
                w.backend,
                w.spec.clone(),
                start(w),
                self.reports.clone(),
                self.metrics.clone(),
            ));
            self.tasks.insert(w.clone(), task);
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}
