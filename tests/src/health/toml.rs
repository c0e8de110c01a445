//! `sheaved` configurations for the health scenarios: the lab's dataplane section and TCP VIPs
//! over every backend, with health-check, slow-start and drain settings spliced in.

use std::fmt::Write as _;

use super::Vip;
use crate::deploy::{ENCAP_SOURCE_V4, ENCAP_SOURCE_V6};
use crate::lab::Lab;

/// A `[[vip]]` over every backend of `lab` (their addresses of `vip`'s family): `settings` are
/// VIP keys (`slow_start = "6s"\n`), `health` the `[vip.health_check]` keys (`None`: no
/// checks), `per_backend` the `[vip.backend.health_check]` keys of some backends, by index.
pub fn vip(
    lab: &Lab,
    vip: Vip,
    settings: &str,
    health: Option<&str>,
    per_backend: &[(usize, &str)],
) -> String {
    let mut s = format!(
        "\n[[vip]]\naddress = \"{}\"\nport = {}\nprotocol = \"tcp\"\n{settings}",
        vip.0.ip(),
        vip.0.port()
    );
    if let Some(h) = health {
        let _ = write!(s, "[vip.health_check]\n{h}");
    }
    for (i, b) in lab.backends().iter().enumerate() {
        let _ = write!(
            s,
            "[[vip.backend]]\naddress = \"{}\"\n",
            b.addr(vip.0.is_ipv6())
        );
        if let Some((_, h)) = per_backend.iter().find(|(j, _)| *j == i) {
            let _ = write!(s, "[vip.backend.health_check]\n{h}");
        }
    }
    s
}

/// The whole file: the lab's dataplane section, then `vips` (from [`vip`]).
pub fn config(vips: &[String]) -> String {
    format!(
        "[dataplane]\nencap_source_v4 = \"{ENCAP_SOURCE_V4}\"\n\
         encap_source_v6 = \"{ENCAP_SOURCE_V6}\"\n{}",
        vips.concat()
    )
}

/// The failover scenario's configuration: `vip` with TCP checks at their defaults.
pub fn tcp_checked(lab: &Lab, vip: Vip) -> String {
    config(&[self::vip(lab, vip, "", Some("type = \"tcp\"\n"), &[])])
}
