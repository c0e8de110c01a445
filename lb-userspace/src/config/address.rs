//! Addresses that cannot be a VIP or a backend: the one rule the configuration file, the API and
//! `sheaved --check` apply.
use std::net::IpAddr;

/// What is wrong with `addr` as a unicast address on the network, if anything.
pub fn unusable(addr: IpAddr) -> Option<&'static str> {
    if addr.is_unspecified() {
        return Some("the unspecified address");
    }
    if addr.is_loopback() {
        return Some("a loopback address");
    }
    if addr.is_multicast() {
        return Some("a multicast address");
    }
    match addr {
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(a) if a.octets()[0] == 0 => Some("a \"this network\" address (0.0.0.0/8)"),
        IpAddr::V4(a) if a.octets()[0] >= 240 => Some("a reserved address (240.0.0.0/4)"),
        IpAddr::V4(a) if a.is_link_local() => Some("a link-local address"),
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local address"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped address (write the IPv4 address)")
        }
        _ => None,
    }
}
