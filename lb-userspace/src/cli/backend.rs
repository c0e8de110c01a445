//! `sheave backend add|del|set-weight|drain|undrain|list`.
use std::net::IpAddr;

use clap::Subcommand;
use hyper::Method;

use super::{Failure, Global, api_call::show, show::print_vip};
use crate::api::types::{AddBackend, UpdateBackend, VipRef, VipView};

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
    /// Stop sending new flows to a backend; established flows keep reaching it.
    Drain { vip: VipRef, address: IpAddr },
    /// Let a drained backend take new flows again.
    Undrain { vip: VipRef, address: IpAddr },
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
            let body = AddBackend { address, weight };
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
                draining: None,
            };
            show(
                g,
                Method::PATCH,
                &backend_path(&vip, &address),
                Some(&body),
                done(format!("backend {address} of {vip}: weight {weight}")),
            )
        }
        BackendCommand::Drain { vip, address } | BackendCommand::Undrain { vip, address } => {
            let draining = matches!(cmd, BackendCommand::Drain { .. });
            let body = UpdateBackend {
                weight: None,
                draining: Some(draining),
            };
            let what = if draining {
                "draining"
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
        BackendCommand::List { vip } => show(g, Method::GET, &vip.path(), None::<&()>, print_vip),
    }
}
