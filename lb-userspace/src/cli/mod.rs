//! The `sheave` command line: a thin client of `sheaved`'s API (plus the backend-side `decap`
//! and `xdp-pass` commands, which act on the local host directly).
pub mod api_call;
pub mod backend;
pub mod config_cmd;
pub mod decap;
pub mod explain;
pub mod show;
mod teardown;
pub mod vip;
pub mod xdp_pass;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    api::{DEFAULT_SOCKET, client::ClientError},
    dataplane::pin_dirs,
};

#[derive(Parser)]
#[command(
    name = "sheave",
    version,
    about = "Operate Sheave, the XDP layer-4 load balancer",
    long_about = "Operate Sheave, the XDP layer-4 load balancer.\n\n\
        On the load balancer, `sheaved --config FILE --iface IF` runs the data plane; these \
        commands talk to it over its API socket. A VIP is written PROTO:ADDR:PORT, e.g. \
        tcp:192.0.2.10:80 or udp:[2001:db8::10]:53.\n\n\
        Examples:\n  \
        sheave vip add tcp:192.0.2.10:80\n  \
        sheave backend add tcp:192.0.2.10:80 198.51.100.11 --weight 100\n  \
        sheave backend drain tcp:192.0.2.10:80 198.51.100.11\n  \
        sheave status\n  \
        sheave explain tcp 203.0.113.7:40000 '->' 192.0.2.10:80\n  \
        sheave config diff /etc/sheave/sheave.toml\n\n\
        On backends, `sheave decap attach` removes Sheave's encapsulation for the VIPs they \
        serve (configured on their loopback).",
    after_help = "Exit status: 0 success; 1 refused (bad input, a full table) or failed; 2 usage \
        error; 3 no such VIP or backend; 4 already exists; 5 sheaved unreachable; 6 sheaved \
        could not write or save a change (it changed nothing)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// sheaved's API socket [default: /run/sheave/sheaved.sock] (commands that talk to sheaved).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON (the API's answer) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Add, remove and inspect VIPs.
    #[command(subcommand)]
    Vip(vip::VipCommand),
    /// Add, remove, reweight and drain a VIP's backends.
    #[command(subcommand)]
    Backend(backend::BackendCommand),
    /// VIPs, backends, their states, weights and ring shares.
    Status,
    /// Traffic per VIP and backend (totals and rates over the last sampling interval), and
    /// packet outcomes.
    Stats,
    /// Which backend a flow goes to, and why (flow table or ring).
    Explain(explain::ExplainArgs),
    /// Compare a configuration file with the running state, or apply it.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Backend side: attach, inspect or detach the decapsulation program.
    #[command(subcommand)]
    Decap(decap::DecapCommand),
    /// For a load balancer on a veth: attach or detach a pass-through program on the veth's
    /// peer, which veth requires to deliver the load balancer's XDP_TX frames.
    #[command(subcommand)]
    XdpPass(xdp_pass::PassCommand),
    /// Remove the load balancer from an interface for good: program, pinned maps and flow
    /// table (sheaved leaves them forwarding when it exits). Refused while sheaved runs, unless
    /// --stop.
    ///
    /// Example: sheave teardown --iface eth0
    Teardown(teardown::TeardownArgs),
}

/// The interface a pinned program is attached to, and where its pins live.
#[derive(Args)]
pub struct Target {
    /// The interface.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// Directory of the program's pins in bpffs [default:
    /// /sys/fs/bpf/sheave/<program>/netns-<this network namespace>/IF].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

impl Target {
    /// The pin directory: `--pin-dir`, else `program`'s default for the interface in this
    /// network namespace (see [`crate::dataplane::pin_dirs`]); an error if only an older
    /// Sheave's pins are at the old default place.
    pub fn dir(&self, program: &str) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.pin_dir {
            return Ok(d.clone());
        }
        let dir = pin_dirs::default_dir(program, &self.iface)?;
        if !dir.exists() {
            pin_dirs::refuse_legacy(&pin_dirs::legacy_dir(program, &self.iface))?;
        }
        Ok(dir)
    }
}

impl Global {
    /// The API socket to use.
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// Refuse `--socket` for a command that works on the host itself, not through sheaved.
    fn local_only(&self, command: &str) -> Result<(), Failure> {
        match &self.socket {
            Some(_) => Err(Failure::usage(format!(
                "--socket does not apply to `sheave {command}`: it works on this host's \
                 interfaces and pins, not through sheaved"
            ))),
            None => Ok(()),
        }
    }
}

/// Run the parsed command; the error carries the exit status.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let g = cli.global;
    match cli.command {
        Command::Vip(c) => vip::run(&g, c),
        Command::Backend(c) => backend::run(&g, c),
        Command::Status => show::status(&g),
        Command::Stats => show::stats(&g),
        Command::Explain(a) => explain::run(&g, a),
        Command::Config(c) => config_cmd::run(&g, c),
        Command::Decap(c) => {
            g.local_only("decap")?;
            decap::run(c, g.json).map_err(Failure::from)
        }
        Command::XdpPass(c) => {
            g.local_only("xdp-pass")?;
            xdp_pass::run(c).map_err(Failure::from)
        }
        Command::Teardown(a) => {
            g.local_only("teardown")?;
            teardown::run(a).map_err(Failure::from)
        }
    }
}

/// A failed command: what to print and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A command line that cannot work (exit status 2, like clap's own usage errors).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure {
            message: format!("{e:#}"),
            code: 1,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match &e {
            ClientError::Unreachable(_) => 5,
            ClientError::Api { status: 404, .. } => 3,
            ClientError::Api { status: 409, .. } => 4,
            // A full table refused the change before anything was written: refused, like bad
            // input.
            ClientError::Api { status: 507, .. } => 1,
            ClientError::Api { status, .. } if *status >= 500 => 6,
            ClientError::Api { .. } | ClientError::Other(_) => 1,
        };
        Failure {
            message: e.to_string(),
            code,
        }
    }
}
