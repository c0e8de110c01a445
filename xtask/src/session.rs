//! Ending a lab session (demo, benchmarks): stop Sheave's deployment, remove the lab, and say
//! what could not be cleaned up, whatever happened before.
use anyhow::Result;
use sheave_tests::{deploy::Deployment, lab::Lab};

/// Stop `deployment` (if it started) and tear `lab` down, printing every cleanup error.
/// Returns the deployment's own start-up error, if any, and whether cleanup was complete.
pub fn tear_down(lab: Lab, deployment: Result<Deployment>) -> (Result<()>, bool) {
    let mut cleanup = Vec::new();
    let deployed = match deployment {
        Ok(d) => {
            // Decap and pass-through programs detached, sheaved stopped (it detaches), servers.
            if let Err(e) = d.stop() {
                cleanup.push(e);
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = lab.teardown() {
        cleanup.push(e);
    }
    for e in &cleanup {
        eprintln!("xtask: cleanup: {e:#}");
    }
    (deployed, cleanup.is_empty())
}
