//! `sheave vip add|del|list|show`.
use clap::Subcommand;
use hyper::Method;

use super::{Failure, Global, api_call::show, show::print_vip};
use crate::{
    api::types::{AddVip, Forwarding, VipRef, VipView},
    config::{AllDown, HealthCheckConfig, VipPolicy},
};

fn parse_all_down(s: &str) -> Result<AllDown, String> {
    match s {
        "fail-open" => Ok(AllDown::FailOpen),
        "drop" => Ok(AllDown::Drop),
        _ => Err(format!("{s:?}: expected fail-open or drop")),
    }
}

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
        #[arg(long, value_enum, default_value_t = Forwarding::Encap)]
        forwarding: Forwarding,
        /// Health check of its backends: tcp, http, https, udp or exec (more keys through
        /// `sheave config apply`). Default: none (backends count as up).
        #[arg(long, value_name = "TYPE")]
        health_check: Option<String>,
        /// Port the health check probes (default: the VIP's port).
        #[arg(long, value_name = "PORT")]
        check_port: Option<u16>,
        /// HTTP(S) check path, e.g. /healthz.
        #[arg(long, value_name = "PATH")]
        check_path: Option<String>,
        /// Ramp a recovered or added backend's weight up over this window, e.g. 30s.
        #[arg(long, value_parser = humantime::parse_duration)]
        slow_start: Option<std::time::Duration>,
        /// Default timeout of `sheave backend drain` (default 60s).
        #[arg(long, value_parser = humantime::parse_duration)]
        drain_timeout: Option<std::time::Duration>,
        /// New flows when every backend is down: fail-open (default) or drop.
        #[arg(long, value_name = "POLICY", value_parser = parse_all_down)]
        all_backends_down: Option<AllDown>,
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
            health_check,
            check_port,
            check_path,
            slow_start,
            drain_timeout,
            all_backends_down,
        } => {
            let mut policy = VipPolicy::default();
            if let Some(kind) = health_check {
                policy.health_check = Some(HealthCheckConfig {
                    kind: Some(kind),
                    port: check_port,
                    path: check_path,
                    ..HealthCheckConfig::default()
                });
            } else if check_port.is_some() || check_path.is_some() {
                return Err(Failure::usage(
                    "--check-port and --check-path go with --health-check TYPE",
                ));
            }
            policy.slow_start = slow_start.unwrap_or_default();
            if let Some(t) = drain_timeout {
                policy.drain_timeout = t;
            }
            policy.all_backends_down = all_backends_down.unwrap_or_default();
            let body = AddVip {
                vip,
                ring_size,
                new_flow_limit,
                forwarding,
                policy: Some(policy),
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
