//! Conversions between Rust's address types and the map layouts in `lb-common`.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use anyhow::{Result, bail, ensure};
use lb_common::{
    addr::{AddrWords, FAMILY_V4, FAMILY_V6, v4_words, v6_words, words_octets},
    flow::FlowKey,
    vip::VipKey,
};

use crate::config::Protocol;

pub fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => FAMILY_V4,
        IpAddr::V6(_) => FAMILY_V6,
    }
}

pub fn ip_words(ip: IpAddr) -> AddrWords {
    match ip {
        IpAddr::V4(a) => v4_words(a.octets()),
        IpAddr::V6(a) => v6_words(a.octets()),
    }
}

pub fn words_ip(words: &AddrWords, family: u8) -> IpAddr {
    let o = words_octets(words);
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(o))
    }
}

pub fn vip_key(addr: IpAddr, port: u16, proto: Protocol) -> VipKey {
    VipKey {
        addr: ip_words(addr),
        port: port.to_be(),
        proto: proto.number(),
        family: family(addr),
    }
}

/// How operators name a VIP: `tcp 198.18.100.1:80`, `udp [2001:db8::1]:53`.
pub fn vip_name(key: &VipKey) -> String {
    let proto = match key.proto {
        lb_common::vip::IPPROTO_TCP => "tcp",
        lb_common::vip::IPPROTO_UDP => "udp",
        _ => "proto?",
    };
    let addr = words_ip(&key.addr, key.family);
    format!("{proto} {}", SocketAddr::new(addr, u16::from_be(key.port)))
}

/// The flow-table key (and hash input) of a packet from `src` to `dst`.
pub fn flow_key(proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Result<FlowKey> {
    ensure!(
        src.is_ipv4() == dst.is_ipv4(),
        "{src} and {dst} are not of the same address family"
    );
    Ok(FlowKey {
        src: ip_words(src.ip()),
        dst: ip_words(dst.ip()),
        sport: src.port().to_be(),
        dport: dst.port().to_be(),
        proto: proto.number(),
        family: family(dst.ip()),
        _pad: [0; 2],
    })
}

/// An IP prefix such as `198.18.200.0/24`; a bare address means a host prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn family(&self) -> u8 {
        family(self.addr)
    }

    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }
}

impl FromStr for Prefix {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Prefix> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let Ok(addr) = a.parse::<IpAddr>() else {
            bail!("{a:?} is not an IP address");
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() {
            max
        } else {
            match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => bail!("prefix length {l:?} must be 0-{max}"),
            }
        };
        let p = Prefix { addr, len };
        ensure!(
            p.masked() == p.addr,
            "{s} has host bits set (did you mean {}/{len}?)",
            p.masked()
        );
        Ok(p)
    }
}

impl Prefix {
    /// The address with host bits cleared.
    pub fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len)
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
            }
            IpAddr::V6(a) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
            }
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `ADDR:PORT` (IPv6: `[ADDR]:PORT`), with an error that says which part is wrong.
pub fn parse_socket_addr(s: &str) -> Result<std::net::SocketAddr> {
    if let Ok(sa) = s.parse() {
        return Ok(sa);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        anyhow::bail!("{s:?} is not ADDR:PORT (IPv6: [ADDR]:PORT): no port");
    };
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let addr_ok = match bracketed {
        Some(h) => h.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    if !addr_ok {
        if bracketed.is_none() && host.contains(':') {
            anyhow::bail!("{s:?}: an IPv6 address goes in brackets: [ADDR]:PORT");
        }
        anyhow::bail!(
            "{s:?}: {:?} is not an IP address",
            bracketed.unwrap_or(host)
        );
    }
    anyhow::bail!("{s:?}: port {port:?} is not a port number (0-65535)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_address_errors_say_which_part_is_wrong() {
        let e = |s: &str| format!("{:#}", parse_socket_addr(s).unwrap_err());
        assert!(e("198.18.1.300:80").contains("\"198.18.1.300\" is not an IP address"));
        assert!(e("198.18.1.3:70000").contains("port \"70000\" is not a port number"));
        assert!(e("[2001:db8::x]:80").contains("\"2001:db8::x\" is not an IP address"));
        assert!(e("2001:db8::1:80").contains("in brackets"));
        assert!(e("198.18.1.3").contains("no port"));
        assert_eq!(
            parse_socket_addr("[2001:db8::1]:53").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
    }
}
