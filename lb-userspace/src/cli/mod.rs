//! The `sheave` command line. Each subcommand lives in its own module.
pub mod decap;
pub mod explain;
pub mod xdp_pass;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sheave",
    version,
    about = "Operate Sheave, the XDP layer-4 load balancer",
    long_about = "Operate Sheave, the XDP layer-4 load balancer.\n\n\
                  On the load balancer, run `sheaved --config FILE --iface IF`. On each backend, \
                  `sheave decap attach` removes Sheave's encapsulation for the VIPs it serves \
                  (which must be configured on its loopback)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Backend side: attach, inspect or detach the decapsulation program.
    #[command(subcommand)]
    Decap(decap::DecapCommand),
    /// Which backend a new flow goes to, computed from a configuration file.
    Explain(explain::ExplainArgs),
    /// For a load balancer on a veth: attach or detach a pass-through program on the veth's
    /// peer, which veth requires to deliver the load balancer's XDP_TX frames.
    #[command(subcommand)]
    XdpPass(xdp_pass::PassCommand),
}

/// The interface a pinned program is attached to, and where its pins live.
#[derive(Args)]
pub struct Target {
    /// The interface.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// Directory of the program's pins in bpffs [default: /sys/fs/bpf/sheave/<program>/IF].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

impl Target {
    pub fn dir(&self, default_root: &str) -> PathBuf {
        self.pin_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_root).join(&self.iface))
    }
}

/// Run the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Decap(c) => decap::run(c),
        Command::Explain(a) => explain::run(a),
        Command::XdpPass(c) => xdp_pass::run(c),
    }
}
