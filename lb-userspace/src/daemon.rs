//! `sheaved`'s life cycle: validate the configuration, load the program and fill its maps, attach,
//! serve until told to stop, detach.
//!
//! Maps are filled before the program is attached, so the first packet already sees every VIP.
use std::{net::IpAddr, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use log::{info, warn};

use crate::{
    config::Config,
    dataplane::{AttachMode, Dataplane, LoadOptions},
    netinfo, reconcile,
    state::{State, dataplane_config},
    wire::Prefix,
};

pub struct Options {
    pub config: PathBuf,
    pub iface: String,
    pub xdp_mode: AttachMode,
}

/// Everything before serving: on error nothing is left attached.
pub fn start(opts: &Options) -> Result<(Dataplane, State)> {
    let cfg = Config::load(&opts.config)?;
    let mut state = State::from_config(&cfg)?;
    let (v4, v6) = encap_sources(&cfg, &state, &opts.iface)?;
    check_forwarding(&state, &opts.iface)?;

    let mut dp = Dataplane::load(LoadOptions {
        flow_table_size: state.flow_table_size,
        ring_slots: state.ring_slots,
    })?;
    reconcile::apply(&mut dp, &mut state, &dataplane_config(v4, v6))?;
    let mode = dp.attach(&opts.iface, opts.xdp_mode)?;
    info!(
        "ready: attached to {} ({mode} mode), {} VIPs, {} backends",
        opts.iface,
        state.vips.len(),
        state.backends.len()
    );
    for v in &state.vips {
        let members: Vec<String> = v
            .members
            .iter()
            .map(|(id, w)| format!("{} (weight {w})", state.backends[*id as usize]))
            .collect();
        info!("VIP {}: {}", v.spec.name(), members.join(", "));
    }
    Ok((dp, state))
}

/// Serve until SIGTERM or SIGINT, then detach.
pub fn run(opts: &Options) -> Result<()> {
    let (mut dp, _state) = start(opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        anyhow::Ok(())
    })?;
    dp.detach()?;
    info!("detached from {}; exiting", opts.iface);
    Ok(())
}

/// Outer source prefixes: the configured ones, else the interface's own address (no per-flow
/// variation then, which we say).
fn encap_sources(
    cfg: &Config,
    state: &State,
    iface: &str,
) -> Result<(Option<Prefix>, Option<Prefix>)> {
    let needs_v4 = state.backends.iter().any(|b| b.is_ipv4());
    let needs_v6 = state.backends.iter().any(|b| b.is_ipv6());
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
                "IPv{} backends are configured but {iface} has no IPv{} address to send \
                 encapsulated packets from: set dataplane.{key}",
                if v6 { 6 } else { 4 },
                if v6 { 6 } else { 4 }
            );
        };
        warn!(
            "dataplane.{key} not set: using {iface}'s address {own} as the outer source; set a \
             prefix so outer sources vary per flow and backends spread flows over receive queues"
        );
        Ok(Some(Prefix::host(*own)))
    };
    Ok((
        pick(cfg.dataplane.encap_source_v4, needs_v4, false)?,
        pick(cfg.dataplane.encap_source_v6, needs_v6, true)?,
    ))
}

/// The program's FIB lookups fail with "forwarding disabled" unless the ingress interface
/// forwards the family of the backends: refuse to start rather than silently drop.
fn check_forwarding(state: &State, iface: &str) -> Result<()> {
    for v6 in [false, true] {
        let needed = state.backends.iter().any(|b| b.is_ipv6() == v6);
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
