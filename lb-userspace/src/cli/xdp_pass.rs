//! `sheave xdp-pass attach|detach`.
use anyhow::Result;
use clap::{Args, Subcommand};

use super::Target;
use crate::dataplane::{AttachMode, objects::PASS, pin_dirs, pinned};

pub const PASS_PROGRAM: &str = "sheave_pass";

#[derive(Subcommand)]
pub enum PassCommand {
    /// Attach the pass-through program; it stays until `sheave xdp-pass detach`.
    ///
    /// Example: sheave xdp-pass attach --iface veth-lb-peer
    Attach(PassAttach),
    /// Detach it and remove its pins.
    Detach(Target),
}

#[derive(Args)]
pub struct PassAttach {
    #[command(flatten)]
    pub target: Target,
    /// XDP attach mode: auto, native or generic.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub xdp_mode: AttachMode,
}

pub fn run(cmd: PassCommand) -> Result<()> {
    match cmd {
        PassCommand::Attach(a) => {
            let dir = a.target.dir(pin_dirs::PASS)?;
            let mode = pinned::attach(
                PASS,
                PASS_PROGRAM,
                &a.target.iface,
                a.xdp_mode,
                &dir,
                |_, _| Ok(()),
            )?;
            println!(
                "xdp-pass attached to {} ({mode} mode); pinned at {}",
                a.target.iface,
                dir.display()
            );
        }
        PassCommand::Detach(t) => {
            pinned::detach(&t.dir(pin_dirs::PASS)?)?;
            println!("xdp-pass detached from {}", t.iface);
        }
    }
    Ok(())
}
