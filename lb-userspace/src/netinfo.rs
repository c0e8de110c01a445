//! What the host says about its network: interface addresses, forwarding sysctls, bpffs.
use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Make sure `dir` can hold bpffs pins: mount bpffs on /sys/fs/bpf if it is the conventional
/// place and nothing is mounted there yet (as systemd would at boot).
pub fn ensure_bpffs(dir: &Path) -> Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !is_bpffs(root) {
        if alone_in_private_mount_namespace() {
            bail!(
                "/sys/fs/bpf is not a bpf filesystem here, and this process is alone in a mount \
                 namespace of its own (as `ip netns exec` makes one): pins in a bpffs mounted \
                 here would vanish when it exits, and the program with them. Run it with \
                 `nsenter --net=/run/netns/NS ...`, which enters only the network namespace \
                 and keeps the host's bpffs"
            );
        }
        std::fs::create_dir_all(root).ok();
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            bail!(
                "/sys/fs/bpf is not a bpf filesystem and mounting one failed: {}",
                std::io::Error::last_os_error()
            );
        }
        log::info!("mounted bpffs on /sys/fs/bpf");
    }
    let mut probe = dir;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    if !is_bpffs(probe) {
        bail!(
            "{} is not on a bpf filesystem: pins need one (mount -t bpf bpf DIR)",
            dir.display()
        );
    }
    Ok(())
}

/// Whether this process has a mount namespace to itself that is not the host's (PID 1's): what
/// `ip netns exec` gives a command. Whatever it mounts goes away when it exits. (A container's
/// mount namespace is shared by the container's processes, so a mount there lasts.)
fn alone_in_private_mount_namespace() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ns = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .ok()
            .map(|m| m.ino())
    };
    let mine = ns("self");
    if mine.is_none() || mine == ns("1") {
        return false;
    }
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    !procs.flatten().any(|p| {
        let name = p.file_name().to_string_lossy().into_owned();
        name != me && name.bytes().all(|b| b.is_ascii_digit()) && ns(&name) == mine
    })
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

/// Whether the kernel forwards packets arriving on `iface` for this IP version. The XDP program's
/// FIB lookups require it, and so does the kernel forwarding packets we hand it while a
/// neighbour entry is being resolved.
pub fn forwarding_enabled(iface: &str, ipv6: bool) -> Result<bool> {
    let path = format!(
        "/proc/sys/net/{}/conf/{iface}/forwarding",
        if ipv6 { "ipv6" } else { "ipv4" }
    );
    let v = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(v.trim() != "0")
}

/// The interface's addresses, global ones first.
pub fn interface_addresses(iface: &str) -> Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        bail!("getifaddrs: {}", std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != iface.as_bytes() {
            continue;
        }
        match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))));
            }
            libc::AF_INET6 => {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    unsafe { libc::freeifaddrs(head) };
    out.sort_by_key(|a| match a {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => 1,
        _ => 0,
    });
    Ok(out)
}
