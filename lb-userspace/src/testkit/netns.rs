//! A private network namespace for the whole test process: a veth pair with on-link backends whose
//! neighbour entries are static, so `bpf_fib_lookup` gives fixed MACs. It vanishes with the
//! process, so nothing can leak.
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use aya::{Ebpf, programs::Xdp};

pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xC1];
pub const FX_MTU: usize = 1500;

/// Backends with neighbour entries: `198.18.1.<n>` and `2001:db8:1::<n>` for n in 11..=13; the
/// MAC ends in the address's last octet.
pub fn backend_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, n]
}

pub struct Netns {
    /// ifindex of `fx0`, the interface backends are reached through.
    pub fx0: u32,
    /// Keeps an XDP program on fx0: the kernel only accepts fx0 as test_run's ingress interface
    /// when its receive queue is registered for XDP, i.e. when a program is attached.
    _ingress_program: Ebpf,
}

pub fn enter() -> Result<Netns> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the dataplane tests load XDP programs and need root (CAP_BPF + CAP_NET_ADMIN)");
    }
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    }
    let lladdr = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut cmds: Vec<String> = vec![
        "link set lo up".into(),
        "link add fx0 type veth peer name fx1".into(),
        format!("link set fx0 address {} mtu {FX_MTU} up", lladdr(LB_MAC)),
        "link set fx1 up".into(),
        "addr add 198.18.1.1/24 dev fx0".into(),
        "addr add 2001:db8:1::1/64 dev fx0 nodad".into(),
    ];
    for n in 11..=13u8 {
        cmds.push(format!(
            "neigh replace 198.18.1.{n} lladdr {} dev fx0 nud permanent",
            lladdr(backend_mac(n))
        ));
        // `2001:db8:1::11` ends in octet 0x11: its MAC ends in that octet, like mac_of() says.
        let v6_octet = u8::from_str_radix(&n.to_string(), 16).unwrap();
        cmds.push(format!(
            "neigh replace 2001:db8:1::{n} lladdr {} dev fx0 nud permanent",
            lladdr(backend_mac(v6_octet))
        ));
    }
    for c in &cmds {
        let out = Command::new("ip").args(c.split(' ')).output()?;
        if !out.status.success() {
            bail!("ip {c}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    for f in [
        "/proc/sys/net/ipv4/conf/all/forwarding",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ] {
        std::fs::write(f, "1").with_context(|| format!("writing {f}"))?;
    }
    let fx0 = unsafe { libc::if_nametoindex(c"fx0".as_ptr()) };

    let mut ebpf = Ebpf::load(crate::dataplane::objects::DECAP)?;
    let prog: &mut Xdp = ebpf.program_mut("sheave_decap").unwrap().try_into()?;
    prog.load()?;
    prog.attach("fx0", aya::programs::XdpMode::Driver)
        .context("attaching a program to fx0")?;
    Ok(Netns {
        fx0,
        _ingress_program: ebpf,
    })
}
