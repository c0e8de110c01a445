//! `sheave backend add|del|set-weight|drain|undrain|disable|enable|list`.
use std::net::IpAddr;

use clap::Subcommand;
use hyper::Method;

use super::{Failure, Global, api_call::show, show::print_vip};
use crate::api::types::{AddBackend, SetBackend, UpdateBackend, VipRef, VipView};

#[derive(Subcommand)]
pub enum BackendCommand {
    /// Add a backend to a VIP; it starts taking new flows at once.
    ///
    /// Example: sheave backend add tcp:192.0.2.10:80 198.51.100.11 --weight 100
    Add {
        vip: VipRef,
        address: IpAddr,
        /// Share of new flows relative to the other backends, 0-65535 (default 100).
        #[arg(long)]
        weight: Option<u16>,
    },
    /// Remove a backend from a VIP: its flows are rescheduled on their next packet.
    Del { vip: VipRef, address: IpAddr },
    /// Change a backend's weight (0: no new flows; established flows stay).
    SetWeight {
        vip: VipRef,
        address: IpAddr,
        weight: u16,
    },
    /// Retire a backend from a VIP without breaking connections: no new flows; established
    /// flows keep reaching it until they end (or the timeout passes), then it leaves the VIP.
    /// `sheave status` shows how many flows are left.
    ///
    /// Example: sheave backend drain tcp:192.0.2.10:80 198.51.100.11 --timeout 5m
    Drain {
        vip: VipRef,
        address: IpAddr,
        /// Longest wait for its flows, e.g. 30s, 5m (default: the VIP's drain_timeout, 60s).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Cancel a drain: the backend takes new flows again.
    Undrain { vip: VipRef, address: IpAddr },
    /// Take a backend out of every VIP at once (maintenance): no new flows, and its flows are
    /// rescheduled on their next packet. Health checks keep running.
    Disable { address: IpAddr },
    /// Put a disabled backend back (with slow start where configured).
    Enable { address: IpAddr },
    /// A VIP's backends with weights, states and ring shares.
    List { vip: VipRef },
}

fn backend_path(vip: &VipRef, address: &IpAddr) -> String {
    format!("{}/backends/{address}", vip.path())
}

pub fn run(g: &Global, cmd: BackendCommand) -> Result<(), Failure> {
    let done = |what: String| move |_: &VipView| println!("{what}");
    match cmd {
        BackendCommand::Add {
            vip,
            address,
            weight,
        } => {
            let path = format!("{}/backends", vip.path());
            let body = AddBackend {
                address,
                weight,
                health_check: None,
            };
            show(
                g,
                Method::POST,
                &path,
                Some(&body),
                done(format!("added backend {address} to {vip}")),
            )
        }
        BackendCommand::Del { vip, address } => show(
            g,
            Method::DELETE,
            &backend_path(&vip, &address),
            None::<&()>,
            done(format!("removed backend {address} from {vip}")),
        ),
        BackendCommand::SetWeight {
            vip,
            address,
            weight,
        } => {
            let body = UpdateBackend {
                weight: Some(weight),
                ..UpdateBackend::default()
            };
            show(
                g,
                Method::PATCH,
                &backend_path(&vip, &address),
                Some(&body),
                done(format!("backend {address} of {vip}: weight {weight}")),
            )
        }
        BackendCommand::Drain { .. } | BackendCommand::Undrain { .. } => {
            let (vip, address, draining, drain_timeout) = match cmd {
                BackendCommand::Drain {
                    vip,
                    address,
                    timeout,
                } => (vip, address, true, timeout),
                BackendCommand::Undrain { vip, address } => (vip, address, false, None),
                _ => unreachable!("matched above"),
            };
            let body = UpdateBackend {
                weight: None,
                draining: Some(draining),
                drain_timeout,
            };
            let what = if draining {
                "draining (it leaves the VIP when its flows end)"
            } else {
                "taking new flows again"
            };
            show(
                g,
                Method::PATCH,
                &backend_path(&vip, &address),
                Some(&body),
                done(format!("backend {address} of {vip}: {what}")),
            )
        }
        BackendCommand::Disable { address } | BackendCommand::Enable { address } => {
            let disabled = matches!(cmd, BackendCommand::Disable { .. });
            let body = SetBackend { disabled };
            let what = if disabled { "disabled" } else { "enabled" };
            show(
                g,
                Method::PUT,
                &format!("/v1/backends/{address}"),
                Some(&body),
                move |_: &Vec<VipView>| println!("backend {address} {what}"),
            )
        }
        BackendCommand::List { vip } => show(g, Method::GET, &vip.path(), None::<&()>, print_vip),
    }
}
