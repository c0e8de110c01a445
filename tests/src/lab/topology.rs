//! Building the lab's wiring and addressing, and checking that it works.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::host::{Host, Shared};
use super::netns::{ethtool, ip, sysctl};
use super::resources::Resources;
use super::{Mtu, VIP4, VIP4_NET, VIP6, VIP6_NET};

const BRIDGE: &str = "br0";
const V4_PREFIX_LEN: u8 = 24;
const V6_PREFIX_LEN: u8 = 64;

/// How long the whole connectivity check may take, and each probe within it.
const VERIFY_BUDGET: Duration = Duration::from_secs(3);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// A port nothing listens on: a host that is reachable answers a SYN with RST.
const PROBE_PORT: u16 = 9;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Lb,
    Backend,
}

pub(crate) struct Built {
    pub(crate) switch_netns: String,
    pub(crate) client: Host,
    pub(crate) lb: Host,
    pub(crate) backends: Vec<Host>,
}

/// `198.18.0.<octet>`.
fn lan_v4(octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, octet)
}

/// `2001:db8::<n>` spelled with the decimal digits of `n`, so that `b1` is 198.18.0.21 and
/// 2001:db8::21 (0x21): the two addresses of a host read alike.
fn lan_v6(n: u8) -> Ipv6Addr {
    let last = u16::from_str_radix(&n.to_string(), 16).expect("decimal digits are hex digits");
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

pub(crate) fn build(
    res: &mut Resources,
    shared: &Arc<Shared>,
    backends: usize,
    mtu: Mtu,
) -> Result<Built> {
    let sw = res.add_netns("sw")?;
    // The switch is a pure L2 device: without IPv6 it has no link-local addresses and sends no
    // router solicitations or MLD reports of its own onto the segment.
    sysctl(
        &sw,
        &[
            "net.ipv6.conf.all.disable_ipv6=1".into(),
            "net.ipv6.conf.default.disable_ipv6=1".into(),
        ],
    )?;
    // No STP (ports forward at once) and no multicast snooping (IPv6 neighbour discovery is
    // multicast; flooding it is simplest and never loses a solicitation).
    ip(&[
        "-n",
        &sw,
        "link",
        "add",
        BRIDGE,
        "type",
        "bridge",
        "stp_state",
        "0",
        "mcast_snooping",
        "0",
    ])?;

    let client = add_host(res, shared, &sw, "client", Role::Client, 10, mtu)?;
    let lb = add_host(res, shared, &sw, "lb", Role::Lb, 2, mtu)?;
    let backends = (1..=backends)
        .map(|i| {
            // Bounded by MAX_BACKENDS, so 20 + i fits an octet.
            let octet = u8::try_from(20 + i).expect("backend count checked by the caller");
            add_host(
                res,
                shared,
                &sw,
                &format!("b{i}"),
                Role::Backend,
                octet,
                mtu,
            )
        })
        .collect::<Result<Vec<_>>>()?;

    ip(&[
        "-n",
        &sw,
        "link",
        "set",
        BRIDGE,
        "mtu",
        &mtu.lan.to_string(),
        "up",
    ])?;
    Ok(Built {
        switch_netns: sw,
        client,
        lb,
        backends,
    })
}

fn add_host(
    res: &mut Resources,
    shared: &Arc<Shared>,
    sw: &str,
    role_name: &str,
    role: Role,
    last: u8,
    mtu: Mtu,
) -> Result<Host> {
    let ns = res.add_netns(role_name)?;
    let host = Host {
        name: role_name.to_string(),
        iface: format!("eth-{role_name}"),
        netns: ns,
        v4: lan_v4(last),
        v6: lan_v6(last),
        shared: shared.clone(),
    };
    let port = format!("p-{role_name}");
    let iface = host.iface.as_str();
    let ns = host.netns.as_str();
    let lan_mtu = mtu.lan.to_string();
    let host_mtu = if role == Role::Client {
        mtu.client
    } else {
        mtu.lan
    }
    .to_string();

    // Created in the switch with the peer moved straight into the host: no name ever exists in
    // the root namespace, so nothing collides with it or with another lab.
    ip(&[
        "-n", sw, "link", "add", &port, "mtu", &lan_mtu, "type", "veth", "peer", "name", iface,
        "mtu", &host_mtu, "netns", ns,
    ])?;
    ip(&["-n", sw, "link", "set", &port, "master", BRIDGE, "up"])?;
    // GRO on the switch ports merges senders' segments (bulk uploads run at realistic speed);
    // the lb's XDP_TX frames reach the bridge through the xdp-pass program on its port.
    ethtool(sw, &["-K", &port, "gro", "on"])?;
    // Frames the bridge sends towards the lb must carry complete checksums: merged segments are
    // re-split on the way out with checksums left for the device to finish, and an XDP program
    // forwarding them to a backend cannot (the backend would drop them). A NIC's receive path
    // never has this; a veth fed by local senders does (see the README).
    if role == Role::Lb {
        ethtool(sw, &["-K", &port, "tx", "off"])?;
    }

    let v4 = format!("{}/{V4_PREFIX_LEN}", host.v4);
    let v6 = format!("{}/{V6_PREFIX_LEN}", host.v6);
    ip(&["-n", ns, "addr", "add", &v4, "dev", iface])?;
    // nodad: usable at once, no 1-2 s of "tentative" during which connections would fail.
    ip(&["-n", ns, "-6", "addr", "add", &v6, "dev", iface, "nodad"])?;
    // The same for the link-local address the kernel adds at "up": neighbour discovery uses it
    // as its source, and while it is tentative the first solicitation waits for it, which cost
    // the first IPv6 connections after a lab came up a SYN retransmission (1 s).
    sysctl(ns, &[format!("net.ipv6.conf.{iface}.accept_dad=0")])?;
    ip(&["-n", ns, "link", "set", iface, "up"])?;

    match role {
        Role::Client => configure_client(&host)?,
        Role::Lb => configure_lb(&host)?,
        Role::Backend => configure_backend(&host)?,
    }
    Ok(host)
}

fn configure_client(h: &Host) -> Result<()> {
    let ns = h.netns.as_str();
    let (lb4, lb6) = (lan_v4(2).to_string(), lan_v6(2).to_string());
    let net4 = format!("{}/{}", VIP4_NET.0, VIP4_NET.1);
    let net6 = format!("{}/{}", VIP6_NET.0, VIP6_NET.1);
    ip(&["-n", ns, "route", "add", &net4, "via", &lb4])?;
    ip(&["-n", ns, "-6", "route", "add", &net6, "via", &lb6])?;
    // Locally generated packets would otherwise leave with partial checksums (CHECKSUM_PARTIAL
    // over veth), which the lb's XDP program forwards as-is and the backend then drops.
    ethtool(ns, &["-K", &h.iface, "tx", "off"])
}

fn configure_lb(h: &Host) -> Result<()> {
    let i = &h.iface;
    sysctl(
        &h.netns,
        &[
            "net.ipv4.ip_forward=1".into(),
            "net.ipv4.conf.all.forwarding=1".into(),
            "net.ipv6.conf.all.forwarding=1".into(),
            // The effective rp_filter is the max of `all` and the interface's: zero both.
            "net.ipv4.conf.all.rp_filter=0".into(),
            "net.ipv4.conf.default.rp_filter=0".into(),
            format!("net.ipv4.conf.{i}.rp_filter=0"),
            // Anything the kernel forwards goes back out the interface it came in on; tell no
            // client to bypass the lb.
            "net.ipv4.conf.all.send_redirects=0".into(),
            format!("net.ipv4.conf.{i}.send_redirects=0"),
        ],
    )
}

fn configure_backend(h: &Host) -> Result<()> {
    let (ns, i) = (h.netns.as_str(), h.iface.as_str());
    ip(&["-n", ns, "addr", "add", &format!("{VIP4}/32"), "dev", "lo"])?;
    ip(&[
        "-n",
        ns,
        "-6",
        "addr",
        "add",
        &format!("{VIP6}/128"),
        "dev",
        "lo",
        "nodad",
    ])?;
    sysctl(
        ns,
        &[
            // Classic DSR: answer ARP only for addresses of the receiving interface (not the
            // VIP on lo) and never source ARP from the VIP, so the segment sees the VIP only
            // behind the lb.
            "net.ipv4.conf.all.arp_ignore=1".into(),
            "net.ipv4.conf.all.arp_announce=2".into(),
            format!("net.ipv4.conf.{i}.arp_ignore=1"),
            format!("net.ipv4.conf.{i}.arp_announce=2"),
            // Decapsulated packets come from the client through a tunnel device while the route
            // back to the client is via the LAN interface: strict reverse-path filtering would
            // drop them.
            "net.ipv4.conf.all.rp_filter=0".into(),
            "net.ipv4.conf.default.rp_filter=0".into(),
            format!("net.ipv4.conf.{i}.rp_filter=0"),
        ],
    )?;
    // Same reason as the client: replies must carry full checksums.
    ethtool(ns, &["-K", i, "tx", "off"])
}

/// Checks that `client` reaches every one of `targets` over IPv4 and IPv6, retrying for up to
/// 3 s. A probe is a TCP SYN to a closed port: the RST proves addresses, ARP/ND and routes work
/// both ways (and that IPv6 addresses left the tentative state), without needing ping.
pub(crate) fn verify<'a>(client: &Host, targets: impl Iterator<Item = &'a Host>) -> Result<()> {
    let mut pending: Vec<(String, SocketAddr, Option<io::Error>)> = targets
        .flat_map(|h| {
            [IpAddr::V4(h.v4), IpAddr::V6(h.v6)]
                .map(|a| (h.name.clone(), SocketAddr::new(a, PROBE_PORT), None))
        })
        .collect();
    let deadline = Instant::now() + VERIFY_BUDGET;
    let pending = client.in_netns(move || {
        loop {
            for p in pending.iter_mut() {
                p.2 = probe(p.1).err();
            }
            pending.retain(|p| p.2.is_some());
            if pending.is_empty() || Instant::now() >= deadline {
                return pending;
            }
            thread::sleep(Duration::from_millis(100));
        }
    })?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut msg = format!("client cannot reach within {VERIFY_BUDGET:?}:");
    for (name, addr, err) in &pending {
        let err = err.as_ref().map(ToString::to_string).unwrap_or_default();
        let _ = write!(msg, " {name} {} ({err});", addr.ip());
    }
    bail!(msg)
}

fn probe(addr: SocketAddr) -> io::Result<()> {
    match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_alike() {
        assert_eq!(lan_v4(21).to_string(), "198.18.0.21");
        assert_eq!(lan_v6(21).to_string(), "2001:db8::21");
        assert_eq!(lan_v6(10).to_string(), "2001:db8::10");
        assert_eq!(lan_v6(2).to_string(), "2001:db8::2");
        assert_eq!(lan_v6(84).to_string(), "2001:db8::84");
    }
}
