//! `sheave decap attach|detach|status`.
use std::net::IpAddr;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Target;
use crate::dataplane::{AttachMode, decap, pin_dirs::DECAP};

#[derive(Subcommand)]
pub enum DecapCommand {
    /// Attach the decap program to an interface; it stays attached after this command exits
    /// (pinned in bpffs) until `sheave decap detach`.
    ///
    /// Example: sheave decap attach --iface eth0 --vip 192.0.2.10 --vip 2001:db8::10
    Attach(AttachArgs),
    /// Detach the decap program from an interface and remove its pins.
    Detach(Target),
    /// Show the VIPs and counters of an attached decap program.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub target: Target,
    /// A VIP this backend serves (repeat for several). Packets whose inner destination is not
    /// listed are left alone.
    #[arg(long = "vip", value_name = "ADDR", required = true)]
    pub vips: Vec<IpAddr>,
    /// XDP attach mode: auto, native or generic.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub xdp_mode: AttachMode,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: DecapCommand, json: bool) -> Result<()> {
    match cmd {
        DecapCommand::Attach(a) => {
            let dir = a.target.dir(DECAP)?;
            let mode = decap::attach(&a.target.iface, &a.vips, a.xdp_mode, &dir)?;
            println!(
                "decap attached to {} ({mode} mode) for {} VIP(s); pinned at {}",
                a.target.iface,
                a.vips.len(),
                dir.display()
            );
        }
        DecapCommand::Detach(t) => {
            decap::detach(&t.dir(DECAP)?)?;
            println!("decap detached from {}", t.iface);
        }
        DecapCommand::Status(s) => {
            let st = decap::status(&s.target.dir(DECAP)?)?;
            if s.json || json {
                let counters: serde_json::Map<String, serde_json::Value> = st
                    .counters
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).into()))
                    .collect();
                let v = serde_json::json!({
                    "iface": s.target.iface,
                    "vips": st.vips.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "counters": counters,
                });
                println!("{v}");
            } else {
                println!("interface: {}", s.target.iface);
                for v in &st.vips {
                    println!("vip:       {v}");
                }
                for (k, v) in &st.counters {
                    println!("{k:<14} {v}");
                }
            }
        }
    }
    Ok(())
}
