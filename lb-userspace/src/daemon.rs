//! `sheaved`'s life cycle: validate the configuration (or restore the saved state), load the
//! program and fill its maps, attach, serve the API and metrics until told to stop, detach.
//!
//! Maps are filled before the program is attached, so the first packet already sees every VIP.
use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use lb_common::config::DataplaneConfig;
use log::{info, warn};

use crate::{
    api::server::{api_router, metrics_router},
    config::Config,
    control::{self, Control, DaemonInfo, Sampler},
    dataplane::{AttachMode, Dataplane, LoadOptions, owner},
    metrics::DaemonMetrics,
    netinfo,
    persist::Store,
    reconcile,
    state::{State, dataplane_config},
    wire::Prefix,
};

pub const DEFAULT_STATE_FILE: &str = "/var/lib/sheave/state.json";
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9917";

pub struct Options {
    pub config: PathBuf,
    pub iface: String,
    pub xdp_mode: AttachMode,
    /// The API's unix socket.
    pub socket: PathBuf,
    /// Where `/metrics` listens; `None` disables it.
    pub metrics_address: Option<SocketAddr>,
    /// Where API changes are persisted.
    pub state_file: PathBuf,
    /// How often counters are sampled for rates.
    pub stats_interval: Duration,
    /// Where the data plane is pinned (default: `/sys/fs/bpf/sheave/lb/<iface>`).
    pub pin_dir: PathBuf,
    /// Remove the data plane on SIGTERM/SIGINT instead of leaving it forwarding.
    pub detach_on_exit: bool,
}

/// Everything before serving. On error nothing is left attached.
pub fn start(opts: &Options, api_metrics: Arc<DaemonMetrics>) -> Result<Control> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&opts.config)
        .with_context(|| format!("cannot read config file {}", opts.config.display()))?;
    let cfg = Config::parse(&text)
        .with_context(|| format!("invalid config file {}", opts.config.display()))?;
    let store = Store::new(opts.state_file.clone(), &text);
    // One daemon per pinned data plane, held for as long as this one runs: a second would adopt
    // the same maps and write over this one's changes.
    netinfo::ensure_bpffs(&opts.pin_dir)?;
    std::fs::create_dir_all(&opts.pin_dir)
        .with_context(|| format!("creating {}", opts.pin_dir.display()))?;
    let pin_lock = owner::lock(&opts.pin_dir)?;
    // Before anything is written: the data plane a previous sheaved left running, if any.
    let (mut dp, adopted) = Dataplane::load_pinned(
        LoadOptions {
            flow_table_size: cfg.dataplane.flow_table_size,
            ring_slots: cfg.dataplane.ring_slots,
        },
        &opts.pin_dir,
    )?;
    if let Some(a) = &adopted {
        info!(
            "adopted the data plane pinned at {} (layout v{}): {} flows kept, {} backends, {} VIPs",
            opts.pin_dir.display(),
            lb_common::limits::MAP_LAYOUT_VERSION,
            a.flows,
            a.backends.len(),
            a.vips.len()
        );
    }
    let restored = store
        .load(&cfg.dataplane, cfg.dataplane.ring_slots, adopted.as_ref())
        .unwrap_or_else(|e| {
            warn!("ignoring the saved state: {e:#}");
            None
        });
    let mut state = match restored {
        Some(s) => {
            info!("restored the state saved in {}", store.path().display());
            s
        }
        None => State::from_config_adopting(&cfg, cfg.dataplane.ring_slots, adopted.as_ref())?,
    };
    if let Some(a) = &adopted {
        let up: Vec<IpAddr> = a.backends.iter().map(|&(_, addr)| addr).collect();
        state.seed_adopted_health(&up, &a.down, Instant::now());
    }
    let encap = resolve_encap(&state, &opts.iface)?;
    check_forwarding(&state, &opts.iface)?;

    reconcile::apply(&mut dp, &mut state, &encap)?;
    state.finish_adoption();
    reconcile::sync(&mut dp, &mut state, &encap)?;
    store.save(&state)?;
    let mode = match dp.attach_pinned(&opts.iface, opts.xdp_mode, &opts.pin_dir)? {
        Some(m) => m.to_string(),
        None => {
            info!("replaced the program in the pinned XDP link (bpf_link_update)");
            crate::dataplane::pins::read_mode(&opts.pin_dir)
                .map_or("unknown".to_string(), |m| m.to_string())
        }
    };
    for v in &state.vips {
        let members: Vec<String> = v
            .members
            .iter()
            .map(|m| {
                format!(
                    "{} (weight {})",
                    state.backend_address(m.backend_id),
                    m.weight
                )
            })
            .collect();
        info!("VIP {}: {}", v.spec.name(), members.join(", "));
    }
    info!(
        "attached to {} ({mode} mode); reconciled in {} ms",
        opts.iface,
        started.elapsed().as_millis()
    );
    Ok(Control {
        maps: dp,
        state,
        encap,
        store: Some(store),
        info: DaemonInfo {
            pin_lock: Some(pin_lock),
            config_path: opts.config.clone(),
            interface: opts.iface.clone(),
            xdp_mode: mode,
            started,
        },
        sampler: Sampler::default(),
        api_metrics,
        lifecycle: Default::default(),
    })
}

/// Serve until SIGTERM or SIGINT, then detach.
pub fn run(opts: &Options) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(opts))
}

async fn serve(opts: &Options) -> Result<()> {
    let api_metrics = Arc::new(DaemonMetrics::new());
    let control = start(opts, api_metrics.clone())?;
    let counters = Arc::new(control.maps.counters.duplicate()?);
    let (handle, task) = control::spawn(control, opts.stats_interval);

    let api_listener = bind_socket(&opts.socket)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = tokio::spawn(
        axum::serve(
            api_listener,
            api_router(handle.clone(), api_metrics.clone()),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    let metrics = match opts.metrics_address {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for /metrics on {addr}"))?;
            Some(tokio::spawn(
                axum::serve(l, metrics_router(handle.clone(), api_metrics, counters))
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            ))
        }
        None => None,
    };
    let reloader = handle.clone();
    drop(handle);
    info!(
        "ready: API on {}, metrics on {}",
        opts.socket.display(),
        opts.metrics_address
            .map_or("(disabled)".to_string(), |a| format!("http://{a}/metrics"))
    );

    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: shutting down"); break }
                _ = int.recv() => { info!("SIGINT: shutting down"); break }
                _ = hup.recv() => {
                    info!("SIGHUP: reloading {}", opts.config.display());
                    if let Err(e) = reloader.call(control::Request::ConfigReload).await {
                        log::error!("reload refused, nothing changed: {}", e.message);
                    }
                }
            }
        }
        drop(reloader);
    }
    let _ = stop_tx.send(true);
    let _ = api.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    let _ = std::fs::remove_file(&opts.socket);
    // The servers held the last handles: the control task ends and gives the data plane back.
    let control = task.await.context("the control task failed")?;
    if opts.detach_on_exit {
        drop(control);
        crate::dataplane::pinned::detach(&opts.pin_dir)?;
        info!(
            "detached from {} and removed {}; exiting",
            opts.iface,
            opts.pin_dir.display()
        );
    } else if opts
        .pin_dir
        .join(crate::dataplane::pinned::LINK_PIN)
        .exists()
    {
        info!(
            "exiting; the data plane stays on {} (pinned at {}; `sheave teardown` removes it)",
            opts.iface,
            opts.pin_dir.display()
        );
    } else {
        warn!(
            "exiting; the data plane pinned at {} is gone (removed while sheaved ran): nothing \
             is left forwarding on {}",
            opts.pin_dir.display(),
            opts.iface
        );
    }
    Ok(())
}

/// The API socket: its directory mode 0700, the socket mode 0600 (root only: it changes what
/// the load balancer does). A stale socket from a crashed daemon is replaced; a live one is not.
fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use: is another sheaved running?", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// The data plane's outer sources: the configured prefixes, else the interface's own address
/// (no per-flow variation then, which we say).
pub fn resolve_encap(state: &State, iface: &str) -> Result<DataplaneConfig> {
    let needs_v4 = state.backends().any(|(_, b)| b.is_ipv4());
    let needs_v6 = state.backends().any(|(_, b)| b.is_ipv6());
    let addrs = netinfo::interface_addresses(iface)
        .with_context(|| format!("reading the addresses of {iface}"))?;
    let pick = |configured: Option<Prefix>, needed: bool, v6: bool| -> Result<Option<Prefix>> {
        if configured.is_some() || !needed {
            return Ok(configured);
        }
        let key = if v6 {
            "encap_source_v6"
        } else {
            "encap_source_v4"
        };
        let Some(own) = addrs.iter().find(|a| {
            a.is_ipv6() == v6 && !matches!(a, IpAddr::V6(x) if x.is_unicast_link_local())
        }) else {
            bail!(
                "IPv{n} backends are configured but {iface} has no IPv{n} address to send \
                 encapsulated packets from: set dataplane.{key}",
                n = if v6 { 6 } else { 4 }
            );
        };
        warn!(
            "dataplane.{key} not set: using {iface}'s address {own} as the outer source; set a \
             prefix so outer sources vary per flow and backends spread flows over receive queues"
        );
        Ok(Some(Prefix::host(*own)))
    };
    Ok(dataplane_config(
        pick(state.options.encap_source_v4, needs_v4, false)?,
        pick(state.options.encap_source_v6, needs_v6, true)?,
    ))
}

/// The program's FIB lookups fail with "forwarding disabled" unless the ingress interface
/// forwards the family of the backends: refuse to start rather than silently drop.
fn check_forwarding(state: &State, iface: &str) -> Result<()> {
    for v6 in [false, true] {
        let needed = state.backends().any(|(_, b)| b.is_ipv6() == v6);
        if needed && !netinfo::forwarding_enabled(iface, v6)? {
            let (fam, key) = if v6 {
                ("IPv6", format!("net.ipv6.conf.{iface}.forwarding"))
            } else {
                ("IPv4", format!("net.ipv4.conf.{iface}.forwarding"))
            };
            bail!(
                "{fam} forwarding is disabled on {iface}, so the XDP program cannot route to \
                 {fam} backends: run `sysctl -w {key}=1` (and persist it)"
            );
        }
    }
    Ok(())
}
