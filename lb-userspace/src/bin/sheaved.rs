//! sheaved: the Sheave daemon. Loads the XDP load balancer onto an interface, fills its maps from
//! the configuration, and detaches it cleanly on SIGTERM/SIGINT.
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use lb_userspace::{config::Config, daemon, dataplane::AttachMode};

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Configuration file (TOML): VIPs, their backends and data-plane settings.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Interface the VIP traffic arrives on.
    #[arg(short, long, value_name = "IF", required_unless_present = "check")]
    iface: Option<String>,
    /// XDP attach mode: auto (native, else generic with a warning), native or generic.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    xdp_mode: AttachMode,
    /// Only validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let args = Args::parse();
    let result = if args.check {
        Config::load(&args.config)
            .map(|c| println!("{}: OK ({} VIPs)", args.config.display(), c.vips.len()))
    } else {
        daemon::run(&daemon::Options {
            config: args.config,
            iface: args.iface.expect("clap requires --iface"),
            xdp_mode: args.xdp_mode,
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sheaved: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
