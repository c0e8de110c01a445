//! sheaved: the Sheave daemon. Loads the XDP load balancer onto an interface, fills its maps from
//! the configuration, serves the API (unix socket) and Prometheus metrics, and detaches cleanly
//! on SIGTERM/SIGINT.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use lb_userspace::{
    api::DEFAULT_SOCKET,
    config::Config,
    daemon::{self, DEFAULT_METRICS_ADDRESS, DEFAULT_STATE_FILE},
    dataplane::AttachMode,
};

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
    /// The API's unix socket (mode 0600).
    #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,
    /// Address for Prometheus' /metrics, or `off`.
    #[arg(long, default_value = DEFAULT_METRICS_ADDRESS, value_name = "ADDR:PORT|off")]
    metrics_address: String,
    /// Where changes made through the API are saved, to survive a restart.
    #[arg(long, default_value = DEFAULT_STATE_FILE, value_name = "FILE")]
    state_file: PathBuf,
    /// Seconds between counter samples (the interval `sheave stats` rates cover).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    stats_interval: f64,
    /// Only validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// bpffs directory the data plane is pinned in, so it outlives this process (default:
    /// /sys/fs/bpf/sheave/lb/IF). A restarted sheaved adopts what it finds there.
    #[arg(long, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// On SIGTERM/SIGINT remove the program and the pins instead of leaving the data plane
    /// forwarding with the last state.
    #[arg(long)]
    detach_on_exit: bool,
    /// Load the XDP program from FILE instead of the embedded one (rehearsing an upgrade).
    #[arg(long, value_name = "FILE", hide = true)]
    bpf_object: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let args = Args::parse();
    let result = if args.check {
        check(&args.config)
    } else {
        options(args).and_then(|o| daemon::run(&o))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sheaved: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn options(args: Args) -> anyhow::Result<daemon::Options> {
    let metrics_address = match args.metrics_address.as_str() {
        "off" => None,
        a => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("--metrics-address {a:?} is not ADDR:PORT or off"))?,
        ),
    };
    anyhow::ensure!(
        args.stats_interval.is_finite() && (0.1..=3600.0).contains(&args.stats_interval),
        "--stats-interval must be between 0.1 and 3600 seconds"
    );
    if let Some(f) = &args.bpf_object {
        let bytes =
            std::fs::read(f).map_err(|e| anyhow::anyhow!("--bpf-object {}: {e}", f.display()))?;
        lb_userspace::dataplane::objects::override_lb(bytes);
    }
    let iface = args.iface.expect("clap requires --iface");
    Ok(daemon::Options {
        config: args.config,
        pin_dir: args.pin_dir.map_or_else(|| default_pin_dir(&iface), Ok)?,
        detach_on_exit: args.detach_on_exit,
        iface,
        xdp_mode: args.xdp_mode,
        socket: args.socket,
        metrics_address,
        state_file: args.state_file,
        stats_interval: Duration::from_secs_f64(args.stats_interval),
    })
}

/// `--check`: everything start-up would refuse in the file itself (syntax, values, and whether
/// it fits the maps it sizes), without touching the system.
fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let state = lb_userspace::state::State::from_config(&cfg, cfg.dataplane.ring_slots)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    println!(
        "{}: OK ({} VIPs, {} backends, {} of {} ring slots)",
        path.display(),
        cfg.vips.len(),
        state.backends().count(),
        lb_userspace::state::State::slots_needed(&cfg),
        cfg.dataplane.ring_slots
    );
    Ok(())
}

/// `--pin-dir`'s default: the load balancer's directory for the interface in this network
/// namespace, refusing to pass over pins an older Sheave left at the old default place.
fn default_pin_dir(iface: &str) -> anyhow::Result<std::path::PathBuf> {
    use lb_userspace::dataplane::pin_dirs::{LB, default_dir, legacy_dir, refuse_legacy};
    let dir = default_dir(LB, iface)?;
    if !dir.exists() {
        refuse_legacy(&legacy_dir(LB, iface))?;
    }
    Ok(dir)
}
