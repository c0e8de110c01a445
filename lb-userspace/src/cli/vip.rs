//! `sheave vip add|del|list|show`.
use clap::Subcommand;
use hyper::Method;

use super::{Failure, Global, api_call::show, show::print_vip};
use crate::api::types::{AddVip, Forwarding, VipRef, VipView};

#[derive(Subcommand)]
pub enum VipCommand {
    /// Add a VIP (no backends yet: add them with `sheave backend add`).
    ///
    /// Example: sheave vip add tcp:192.0.2.10:80 --ring-size 65537
    Add {
        /// PROTO:ADDR:PORT, e.g. tcp:192.0.2.10:80 or udp:[2001:db8::10]:53.
        vip: VipRef,
        /// Maglev table size, a prime (default 65537; larger tables balance many backends
        /// better).
        #[arg(long, value_name = "M")]
        ring_size: Option<u32>,
        /// New flows per second allowed into the flow table (a SYN-flood guard: above it new
        /// flows are still forwarded, but not remembered). Default: no limit.
        #[arg(long, value_name = "PER_SECOND")]
        new_flow_limit: Option<u32>,
        /// How packets reach the backends: ipip (direct server return through IPIP/IP6IP6).
        #[arg(long, value_enum, default_value_t = Forwarding::Ipip)]
        forwarding: Forwarding,
    },
    /// Remove a VIP: its packets go to the kernel from then on.
    Del { vip: VipRef },
    /// List VIPs and their backends.
    List,
    /// Show one VIP.
    Show { vip: VipRef },
}

pub fn run(g: &Global, cmd: VipCommand) -> Result<(), Failure> {
    match cmd {
        VipCommand::Add {
            vip,
            ring_size,
            new_flow_limit,
            forwarding,
        } => {
            let body = AddVip {
                vip,
                ring_size,
                new_flow_limit,
                forwarding,
            };
            show(g, Method::POST, "/v1/vips", Some(&body), |v: &VipView| {
                println!("added VIP {} (ring size {})", v.name, v.ring_size)
            })
        }
        VipCommand::Del { vip } => show(
            g,
            Method::DELETE,
            &vip.path(),
            None::<&()>,
            |v: &VipView| println!("removed VIP {}", v.name),
        ),
        VipCommand::List => show(
            g,
            Method::GET,
            "/v1/vips",
            None::<&()>,
            |vs: &Vec<VipView>| {
                if vs.is_empty() {
                    println!("no VIPs");
                }
                vs.iter().for_each(print_vip)
            },
        ),
        VipCommand::Show { vip } => show(g, Method::GET, &vip.path(), None::<&()>, print_vip),
    }
}
