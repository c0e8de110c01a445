//! `sheave explain`: which backend a new flow goes to, by the same hash and rings as the kernel.
use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use crate::{
    config::{Config, Protocol},
    simulate::Simulator,
    state::State,
    wire::flow_key,
};

#[derive(Args)]
pub struct ExplainArgs {
    /// Configuration file whose VIPs and backends to use.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The flow: `tcp 198.51.100.7:40000 -> 192.0.2.10:80` (the arrow is optional).
    #[arg(value_name = "FLOW", num_args = 3..=4, required = true)]
    pub flow: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ExplainArgs) -> Result<()> {
    let words: Vec<&str> = a
        .flow
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "->")
        .collect();
    let [proto, src, dst] = words[..] else {
        bail!("expected PROTO SRC -> DST, e.g. tcp 198.51.100.7:40000 -> 192.0.2.10:80");
    };
    let proto: Protocol = proto.parse()?;
    let src: SocketAddr = src
        .parse()
        .map_err(|_| anyhow::anyhow!("{src:?} is not ADDR:PORT (IPv6: [ADDR]:PORT)"))?;
    let dst: SocketAddr = dst
        .parse()
        .map_err(|_| anyhow::anyhow!("{dst:?} is not ADDR:PORT (IPv6: [ADDR]:PORT)"))?;
    let cfg = Config::load(&a.config)?;
    let state = State::from_config(&cfg)?;
    let key = flow_key(proto, src, dst)?;
    let sim = Simulator::new(&state);
    let Some(vip) = state
        .vips
        .iter()
        .find(|v| v.key.addr == key.dst && v.key.port == key.dport && v.key.proto == key.proto)
    else {
        bail!("{proto} {dst} is not a VIP in {}", a.config.display());
    };
    let flow = format!("{proto} {src} -> {dst}");
    match sim.pick(&key) {
        Some(p) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "flow": flow, "vip": vip.spec.name(), "backend": p.backend.to_string(),
                        "backend_id": p.backend_id, "hash": p.hash, "slot": p.slot,
                        "ring_size": vip.spec.ring_size, "source": "ring",
                    })
                );
            } else {
                println!("{flow}");
                println!("  backend   {} (id {})", p.backend, p.backend_id);
                println!(
                    "  why       new flow: hash {:#010x} → Maglev slot {} of {}",
                    p.hash, p.slot, vip.spec.ring_size
                );
                println!("  note      an established flow keeps the backend in the flow table");
            }
        }
        None => bail!(
            "{} has no backend with weight > 0: new flows are dropped",
            vip.spec.name()
        ),
    }
    Ok(())
}
