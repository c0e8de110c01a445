//! A private network namespace for the benchmark process, so that the program's `bpf_fib_lookup`
//! finds the backends: a veth pair `fx0`/`fx1` with the backends on-link behind fx0 and static
//! neighbour entries, forwarding on. A trimmed copy of the dataplane tests' `netns.rs` (a test
//! module, not importable); it vanishes with the process, so nothing can leak.
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    programs::{Xdp, XdpMode},
};

pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xC1];

/// Backends with neighbour entries: `198.18.1.<n>` and `2001:db8:1::<n>` for these `n`.
pub const BACKENDS: [u8; 3] = [11, 12, 13];

pub struct Netns {
    /// ifindex of `fx0`, the interface the packets "arrive" on and the backends are behind, so
    /// forwarded packets end in XDP_TX: the one-armed load balancer.
    pub fx0: u32,
    /// The kernel accepts fx0 as test_run's ingress interface only while its receive queue is
    /// registered for XDP, i.e. while a program is attached. Dropping this detaches it.
    _attached: Ebpf,
}

/// Moves the process into a new network namespace and sets it up. Call before any thread starts:
/// unshare(CLONE_NEWNET) moves only the calling thread.
pub fn enter() -> Result<Netns> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-packet loads XDP programs and needs root (CAP_BPF + CAP_NET_ADMIN)");
    }
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    }
    let mut cmds: Vec<String> = vec![
        "link set lo up".into(),
        "link add fx0 type veth peer name fx1".into(),
        format!("link set fx0 address {} up", lladdr(LB_MAC)),
        "link set fx1 up".into(),
        "addr add 198.18.1.1/24 dev fx0".into(),
        "addr add 2001:db8:1::1/64 dev fx0 nodad".into(),
    ];
    for n in BACKENDS {
        cmds.push(format!(
            "neigh replace 198.18.1.{n} lladdr {} dev fx0 nud permanent",
            lladdr(backend_mac(n))
        ));
        cmds.push(format!(
            "neigh replace 2001:db8:1::{n} lladdr {} dev fx0 nud permanent",
            lladdr(backend_mac(n))
        ));
    }
    for c in &cmds {
        let out = Command::new("ip")
            .args(c.split(' '))
            .output()
            .context("running ip")?;
        if !out.status.success() {
            bail!("ip {c}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    // The FIB helper answers only for interfaces that forward.
    for f in [
        "/proc/sys/net/ipv4/conf/all/forwarding",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ] {
        std::fs::write(f, "1").with_context(|| format!("writing {f}"))?;
    }
    let fx0 = unsafe { libc::if_nametoindex(c"fx0".as_ptr()) };
    if fx0 == 0 {
        bail!("fx0 has no ifindex");
    }
    let mut ebpf = Ebpf::load(lb_userspace::dataplane::objects::PASS)?;
    let prog: &mut Xdp = ebpf
        .program_mut("sheave_pass")
        .context("sheave_pass missing from its object")?
        .try_into()?;
    prog.load()?;
    prog.attach("fx0", XdpMode::Driver)
        .context("attaching a program to fx0")?;
    Ok(Netns {
        fx0,
        _attached: ebpf,
    })
}

fn backend_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, n]
}

fn lladdr(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}
