//! Bring up the lab with Sheave deployed and keep it until Enter (or N seconds), for poking at it
//! by hand: `nsenter --net=/run/netns/<ns> ...`. Usage: lab-up [SECONDS]
use std::time::Duration;

use sheave_tests::{deploy::Deployment, lab::Lab};

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::args().nth(1).map_or(Ok(600), |s| s.parse())?;
    let lab = Lab::create("up", 3)?;
    let d = Deployment::start(&lab)?;
    println!("namespaces: {:?}", lab.namespaces());
    println!("logs: {}", lab.dir().display());
    std::thread::sleep(Duration::from_secs(secs));
    d.stop()?;
    lab.teardown()
}
