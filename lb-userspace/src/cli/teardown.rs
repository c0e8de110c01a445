//! `sheave teardown`: remove the load balancer a (stopped or running) sheaved left on an
//! interface: the XDP program, its pinned maps (flow table included) and the layout pin, and a
//! decap program pinned for the same interface at its default place (a host that is both load
//! balancer and backend). Since sheaved leaves the data plane forwarding when it exits, this is
//! how it is removed for good.
use anyhow::{Result, bail};

use super::Target;
use crate::dataplane::{decap, pinned, pins::LB_PIN_ROOT};

pub fn run(t: Target) -> Result<()> {
    let dir = t.dir(LB_PIN_ROOT);
    let decap_dir = std::path::Path::new(decap::DEFAULT_PIN_ROOT).join(&t.iface);
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
