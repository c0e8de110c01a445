//! A lab of real hosts for end-to-end tests and the demo: one network namespace per host, all
//! joined by a Linux bridge that lives in a namespace of its own.
//!
//! ```text
//!                 <prefix>-sw: br0 (no addresses, IPv6 off)
//!        p-client      p-lb        p-b1  ...  p-bN        (bridge ports, MTU 1600, GRO on)
//!           |            |           |          |
//!     eth-client      eth-lb      eth-b1 ...  eth-bN      (one namespace each: <prefix>-<role>)
//!  198.18.0.10/24  198.18.0.2/24  198.18.0.(20+i)/24
//!  2001:db8::10    2001:db8::2    2001:db8::(20+i)
//! ```
//!
//! The client routes the VIP prefixes via the lb; backends carry both VIPs on `lo` and never answer
//! ARP for them (classic direct server return), so their replies go straight to the client.
//!
//! Everything the lab creates is removed by [`Lab::teardown`] or, best effort, on drop. Namespaces
//! are named `sl<pid>...` so that [`sweep_stale`] can delete the leftovers of dead processes (a
//! test binary killed by SIGKILL never runs its destructors).

mod bins;
mod cmd;
mod host;
mod netns;
mod process;
mod report;
mod resources;
mod topology;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

pub use bins::bin_path;
pub use host::{ClientOpts, Host};
pub use process::Process;
pub use report::ClientReport;

use resources::Resources;

/// The IPv4 virtual IP the load balancer serves; backends carry it on `lo`.
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
/// The IPv6 virtual IP the load balancer serves; backends carry it on `lo`.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
/// The service port on both VIPs.
pub const VIP_PORT: u16 = 80;
/// The IPv4 prefix the client routes via the lb (it contains [`VIP4`]).
pub const VIP4_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 100, 0), 24);
/// The IPv6 prefix the client routes via the lb (it contains [`VIP6`]).
pub const VIP6_NET: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), 64);

/// MTU of every lab interface but the client's: room for the outer header the LB adds.
pub const LAN_MTU: u32 = 1600;
/// MTU of the client's own interface, so its packets plus an outer header still fit [`LAN_MTU`].
pub const CLIENT_MTU: u32 = 1500;

/// A lab's MTUs: the segment's (bridge, ports, lb, backends) and the client's, smaller by at
/// least the largest outer header (IPv6, 40 bytes) so encapsulated packets fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mtu {
    pub lan: u32,
    pub client: u32,
}

impl Mtu {
    /// Ethernet-sized frames: 1500 at the client.
    pub const STANDARD: Mtu = Mtu {
        lan: LAN_MTU,
        client: CLIENT_MTU,
    };
    /// Jumbo frames, as data centres run them: 9000 on the segment.
    pub const JUMBO: Mtu = Mtu {
        lan: 9000,
        client: 8960,
    };
}
/// Backends a lab may have: the last octet of a backend's IPv4 address is `20 + i`.
pub const MAX_BACKENDS: usize = 64;

/// Set to `1` to keep [`Lab::dir`] (logs, configs) after the lab is gone.
pub const KEEP_ENV: &str = "SHEAVE_LAB_KEEP";

/// A running lab. Drop it (or better, call [`Lab::teardown`]) after the [`Process`] guards of
/// the programs running in it: Rust drops locals in reverse order, so declare the lab first.
#[derive(Debug)]
pub struct Lab {
    res: Resources,
    switch_netns: String,
    client: Host,
    lb: Host,
    backends: Vec<Host>,
}

impl Lab {
    /// Builds the lab: namespaces, bridge, veths, addresses, routes, sysctls, offloads; then
    /// checks that the client reaches the lb and every backend over IPv4 and IPv6.
    ///
    /// `tag` (empty, or a lowercase letter then up to 5 lowercase letters/digits) only makes the
    /// names easier to tell apart; labs created concurrently in one process get distinct names
    /// whatever their tags. Leftovers of dead processes are swept first.
    pub fn create(tag: &str, backends: usize) -> Result<Lab> {
        Lab::create_with_mtu(tag, backends, Mtu::STANDARD)
    }

    /// [`Lab::create`] with other MTUs (jumbo frames).
    pub fn create_with_mtu(tag: &str, backends: usize, mtu: Mtu) -> Result<Lab> {
        validate_tag(tag)?;
        if backends == 0 || backends > MAX_BACKENDS {
            bail!("a lab needs 1..={MAX_BACKENDS} backends, not {backends}");
        }
        // A failed sweep only leaves some leftovers behind; they cannot collide with ours (names
        // carry our pid), so it is worth a warning, not a failed lab.
        if let Err(e) = sweep_stale() {
            eprintln!("sheave lab: warning: sweeping leftovers of dead labs: {e:#}");
        }
        let mut res = Resources::new(tag)?;
        let shared = Arc::new(host::Shared::new(res.dir().to_path_buf()));
        let built = topology::build(&mut res, &shared, backends, mtu)
            .with_context(|| format!("building lab {}", res.prefix()))?;
        let servers = std::iter::once(&built.lb).chain(&built.backends);
        topology::verify(&built.client, servers)
            .with_context(|| format!("checking lab {}", res.prefix()))?;
        Ok(Lab {
            res,
            switch_netns: built.switch_netns,
            client: built.client,
            lb: built.lb,
            backends: built.backends,
        })
    }

    /// The host that plays the outside world.
    pub fn client(&self) -> &Host {
        &self.client
    }

    /// The host the load balancer runs on.
    pub fn lb(&self) -> &Host {
        &self.lb
    }

    /// The real servers, `b1..bN` in order.
    pub fn backends(&self) -> &[Host] {
        &self.backends
    }

    /// Every host: client, lb, then the backends.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        [&self.client, &self.lb].into_iter().chain(&self.backends)
    }

    /// The host with this role name (`client`, `lb`, `b1`, ...).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts().find(|h| h.name == name)
    }

    /// The common prefix of this lab's namespace names, e.g. `sl1234t`.
    pub fn prefix(&self) -> &str {
        self.res.prefix()
    }

    /// The namespace holding the bridge `br0` and the bridge-side veth ports `p-<role>`.
    pub fn switch_netns(&self) -> &str {
        &self.switch_netns
    }

    /// Every namespace this lab created, switch first.
    pub fn namespaces(&self) -> Vec<String> {
        self.res.namespaces().to_vec()
    }

    /// A scratch directory for logs and config files; removed with the lab unless
    /// `SHEAVE_LAB_KEEP=1`.
    pub fn dir(&self) -> &Path {
        self.res.dir()
    }

    /// Writes the tail of every log in [`Lab::dir`] to stderr: handy right before a test fails.
    pub fn print_logs(&self) {
        self.res.print_logs();
    }

    /// Kills whatever still runs in the lab's namespaces, deletes them and the scratch
    /// directory, and reports every failure. Dropping the lab does the same, best effort
    /// (`Resources` carries the `Drop`, so a lab that fails half-way through `create` is
    /// cleaned up too).
    pub fn teardown(mut self) -> Result<()> {
        self.res.release()
    }
}

/// Deletes what labs of dead processes left behind (a test binary killed by SIGKILL or Ctrl-C
/// never runs its destructors): their namespaces, any process still inside those, and their
/// scratch directories unless kept with `SHEAVE_LAB_KEEP=1`. Live labs, in this process or
/// another, are left alone. Returns what was removed. [`Lab::create`] calls it.
pub fn sweep_stale() -> Result<Vec<String>> {
    // Both halves run even if one fails.
    let namespaces = netns::sweep_stale_namespaces();
    let dirs = resources::sweep_stale_dirs();
    let mut swept = namespaces?;
    swept.extend(dirs?.iter().map(|d| d.display().to_string()));
    Ok(swept)
}

/// Whether a namespace of this name exists under /run/netns, e.g. to check a teardown.
pub fn netns_exists(name: &str) -> bool {
    netns::exists(name)
}

fn validate_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let ok = match chars.next() {
        None => true,
        // A leading letter keeps the pid in `sl<pid><tag>` unambiguous for sweep_stale().
        Some(c) => {
            c.is_ascii_lowercase()
                && tag.len() <= 6
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }
    };
    if !ok {
        bail!("lab tag {tag:?} must be empty or a lowercase letter then up to 5 of [a-z0-9]");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for good in ["", "t", "demo", "a1b2c3"] {
            assert!(validate_tag(good).is_ok(), "{good}");
        }
        for bad in ["1", "T", "a-b", "toolong7", "é"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
