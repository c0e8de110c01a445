//! Ending a lab session (demo, benchmarks): stop Sheave's deployment, remove the lab, and say
//! what could not be cleaned up, whatever happened before.
use anyhow::{Context as _, Result, bail};
use sheave_tests::{
    deploy::Deployment,
    lab::{self, Lab},
};

use crate::signals;

/// A benchmark on Sheave deployed in a fresh lab: `what` names it in messages, `config` is
/// sheaved's configuration for the lab (default: `deploy::lb_config`). The lab's logs are shown
/// when `measure` fails; everything is torn down whatever happened.
pub fn on_deployment<T>(
    what: &str,
    backends: usize,
    config: impl FnOnce(&Lab) -> Option<String>,
    measure: impl FnOnce(&Lab, &mut Deployment) -> Result<T>,
) -> Result<T> {
    for program in ["sheaved", "sheave", "sheave-lab-http"] {
        lab::bin_path(program)
            .with_context(|| format!("the {what} needs the workspace's binaries"))?;
    }
    signals::check()?;
    eprintln!("  creating a lab ({backends} backends)");
    let lab = Lab::create("bench", backends).context("creating the lab")?;
    // Interrupted half-way, start() fails and its own cleanup removes what it attached.
    let mut deployment = match config(&lab) {
        Some(text) => Deployment::start_with_config(&lab, &text),
        None => Deployment::start(&lab),
    }
    .context("deploying Sheave in the lab");
    let outcome = deployment.as_mut().ok().map(|d| measure(&lab, d));
    if !matches!(outcome, Some(Ok(_))) && !signals::interrupted() {
        // The logs go with the lab; show them while they exist.
        lab.print_logs();
    }
    eprintln!("  tearing down");
    let (deployed, cleaned) = tear_down(lab, deployment);
    signals::check()?;
    deployed?;
    let figures = outcome.expect("deployed, so measured")?;
    if !cleaned {
        bail!("the {what} ran but cleaning up failed (see above)");
    }
    Ok(figures)
}

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
