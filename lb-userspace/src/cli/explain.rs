//! `sheave explain`: which backend a flow goes to. Asks the daemon (which also sees the flow
//! table), or with `--config` computes it offline with the same hash and rings.
use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hyper::Method;

use super::{Failure, Global, api_call::show};
use crate::{
    api::types::{ExplainRequest, ExplainView},
    config::{Config, Protocol},
    simulate,
    state::State,
    wire::flow_key,
};

#[derive(Args)]
pub struct ExplainArgs {
    /// Compute offline from this configuration file instead of asking sheaved (no flow table:
    /// the answer is where a new flow would go).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The flow: `tcp 198.51.100.7:40000 -> 192.0.2.10:80` (quote the arrow, or omit it).
    #[arg(value_name = "FLOW", num_args = 3..=4, required = true, allow_hyphen_values = true)]
    pub flow: Vec<String>,
}

fn parse_flow(words: &[String]) -> Result<ExplainRequest> {
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "->")
        .collect();
    let [proto, src, dst] = words[..] else {
        bail!("expected PROTO SRC -> DST, e.g. tcp 198.51.100.7:40000 -> 192.0.2.10:80");
    };
    let sa = |s: &str| -> Result<SocketAddr> { crate::wire::parse_socket_addr(s) };
    Ok(ExplainRequest {
        protocol: proto.parse::<Protocol>()?,
        source: sa(src)?,
        destination: sa(dst)?,
    })
}

pub fn run(g: &Global, a: ExplainArgs) -> Result<(), Failure> {
    let req = parse_flow(&a.flow)?;
    let print = |v: &ExplainView| {
        println!("{}", v.flow);
        match v.backend {
            Some(b) => println!("  backend   {b} (id {})", v.backend_id.unwrap_or_default()),
            None => println!("  backend   none"),
        }
        println!("  vip       {}", v.vip);
        println!("  source    {}", v.source);
        println!("  phase     {}", v.phase);
        println!("  why       {}", v.reason);
    };
    match &a.config {
        None => show(g, Method::POST, "/v1/explain", Some(&req), print),
        Some(path) => {
            let v = offline(path, &req)?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
            } else {
                print(&v);
            }
            Ok(())
        }
    }
}

fn offline(path: &std::path::Path, r: &ExplainRequest) -> Result<ExplainView> {
    let cfg = Config::load(path)?;
    let state = State::from_config(&cfg, cfg.dataplane.ring_slots)?;
    let key = flow_key(r.protocol, r.source, r.destination)?;
    simulate::explain(&state, &key, r.describe(), None, true).with_context(|| {
        format!(
            "{} {} is not a VIP in {}",
            r.protocol,
            r.destination,
            path.display()
        )
    })
}
