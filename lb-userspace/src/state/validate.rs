//! Addresses that cannot work as a VIP or as a backend, refused with the reason: the data plane
//! would accept them and fail quietly (a broadcast VIP, a backend that is the VIP itself).
use std::net::IpAddr;

use super::{ErrorKind, StateError};
use crate::config::address::unusable;

/// Why `addr` cannot be a VIP, if it cannot.
pub(super) fn vip_address(addr: IpAddr) -> Result<(), StateError> {
    unusable(addr).map_or(Ok(()), |why| {
        refuse(format!(
            "VIP address {addr}: {why} cannot be a VIP (clients cannot reach it through a router)"
        ))
    })
}

/// Why `addr` cannot be a backend, if it cannot.
pub(super) fn backend_address(addr: IpAddr) -> Result<(), StateError> {
    unusable(addr).map_or(Ok(()), |why| {
        refuse(format!(
            "backend address {addr}: {why} cannot be a backend (encapsulated packets cannot \
             be routed to it)"
        ))
    })
}

fn refuse(message: String) -> Result<(), StateError> {
    Err(StateError {
        kind: ErrorKind::Invalid,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_addresses_are_named() {
        for (a, why) in [
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("127.0.0.1", "loopback"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("169.254.1.1", "link-local"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("ff02::1", "multicast"),
            ("fe80::1", "link-local"),
            ("::ffff:198.18.0.1", "IPv4-mapped"),
        ] {
            let e = vip_address(a.parse().unwrap()).unwrap_err();
            assert!(e.message.contains(why) && e.message.contains(a), "{a}: {e}");
            let e = backend_address(a.parse().unwrap()).unwrap_err();
            assert!(e.message.starts_with("backend address"), "{a}: {e}");
        }
        for a in ["198.18.0.1", "192.0.2.10", "2001:db8::1", "10.1.2.3"] {
            assert!(vip_address(a.parse().unwrap()).is_ok(), "{a}");
        }
    }
}
