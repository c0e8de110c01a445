//! `sheave teardown`: remove the load balancer a stopped sheaved left on an interface: the XDP
//! program, its pinned maps (flow table included) and the layout pin, and a decap program
//! pinned for the same interface at its default place (a host that is both load balancer and
//! backend). Since sheaved leaves the data plane forwarding when it exits, this is how it is
//! removed for good. While a sheaved owns the data plane it is refused (the daemon would go on
//! believing in maps that are gone), unless `--stop` asks to stop that daemon first.
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

use super::Target;
use crate::dataplane::{decap, owner, pin_dirs, pinned};

#[derive(Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub target: Target,
    /// Stop the sheaved that owns this data plane first (SIGTERM, then wait up to 10 s).
    #[arg(long)]
    pub stop: bool,
}

/// How long a stopped owner may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(a: TeardownArgs) -> Result<()> {
    let t = &a.target;
    let dir = t.dir(pin_dirs::LB)?;
    // Held until the pins are gone: no sheaved can start on them meanwhile.
    let _lock = if dir.exists() {
        Some(take_from_owner(&dir, a.stop)?)
    } else {
        None
    };
    let decap_dir = pin_dirs::default_dir(pin_dirs::DECAP, &t.iface)?;
    let had_decap = decap_dir.join(pinned::LINK_PIN).exists();
    if had_decap {
        decap::detach(&decap_dir)?;
        println!("decap program detached from {}", t.iface);
    }
    if dir.join(pinned::LINK_PIN).exists() {
        pinned::detach(&dir)?;
        println!(
            "load balancer detached from {}; removed {}",
            t.iface,
            dir.display()
        );
    } else if dir.exists() {
        pinned::remove_dir_pins(&dir)?;
        println!(
            "no program was attached through {}; removed its pins",
            dir.display()
        );
    } else if !had_decap {
        bail!(
            "nothing is pinned at {} (is sheaved using another --pin-dir?)",
            dir.display()
        );
    }
    Ok(())
}

/// The lock on `dir`: free, or (with `stop`) once its owner has been stopped and has exited.
fn take_from_owner(dir: &std::path::Path, stop: bool) -> Result<owner::PinLock> {
    if let Some(lock) = owner::try_lock(dir)? {
        return Ok(lock);
    }
    let pid = owner::owner(dir);
    let who = pid.map_or("a sheaved".to_string(), |p| format!("sheaved (pid {p})"));
    if !stop {
        bail!(
            "{who} owns the data plane pinned at {}: stop it first (e.g. `systemctl stop \
             sheaved`), or run `sheave teardown --stop` to have it stopped",
            dir.display()
        );
    }
    let Some(pid) = pid else {
        bail!("cannot tell which process holds {}", dir.display());
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        bail!("stopping {who}: {}", std::io::Error::last_os_error());
    }
    println!("stopping {who}");
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(lock) = owner::try_lock(dir)? {
            return Ok(lock);
        }
        if Instant::now() > deadline {
            bail!(
                "{who} still holds {} {STOP_TIMEOUT:?} after SIGTERM",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
