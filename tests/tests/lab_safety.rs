//! Operator safety around pinned programs, found from outside: pins are kept per network
//! namespace (containers on one host each have their own `eth0`, and `decap attach`, `status`
//! and `detach` in one must never see or touch another's), and a command run by `ip netns exec`
//! (a private bpffs that dies with the command) is refused with the fix instead of reporting a
//! program that vanishes a moment later.
use std::process::{Command, Output};

use sheave_tests::lab::bin_path;

fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab tests need root (network namespaces, XDP); run them through `cargo xtask test`"
    );
}

/// Two network namespaces joined by a veth whose ends are both called `eth0`, removed (with
/// any decap program left in them) on drop, also when a test fails.
struct Twins {
    names: [String; 2],
}

impl Twins {
    /// `tag`: a few letters, distinct per test (tests of one binary run at once).
    fn create(tag: &str) -> Twins {
        let pid = std::process::id();
        let t = Twins {
            names: [format!("sl{pid}{tag}a"), format!("sl{pid}{tag}b")],
        };
        for n in &t.names {
            run("ip", &["netns", "add", n]);
        }
        run(
            "ip",
            &[
                "-n",
                &t.names[0],
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &t.names[1],
            ],
        );
        for n in &t.names {
            run("ip", &["-n", n, "link", "set", "eth0", "up"]);
        }
        t
    }

    /// `sheave ARGS` in namespace `i`, entered the recommended way (network namespace only).
    fn sheave(&self, i: usize, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.names[i]))
            .arg("--")
            .arg(bin_path("sheave").unwrap())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Twins {
    fn drop(&mut self) {
        for i in 0..2 {
            let _ = self.sheave(i, &["decap", "detach", "--iface", "eth0"]);
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn decap_programs_of_two_namespaces_with_one_interface_name_stay_apart() {
    require_root();
    let t = Twins::create("tw");
    let attach = |i: usize, vip: &str| {
        t.sheave(
            i,
            &[
                "decap",
                "attach",
                "--iface",
                "eth0",
                "--vip",
                vip,
                "--xdp-mode",
                "generic",
            ],
        )
    };
    ok(&attach(0, "198.18.100.1"));
    // The same interface name in the other namespace is another interface: not "already
    // attached".
    ok(&attach(1, "198.18.100.2"));
    let status = |i: usize| ok(&t.sheave(i, &["decap", "status", "--iface", "eth0"]));
    let (a, b) = (status(0), status(1));
    assert!(
        a.contains("198.18.100.1") && !a.contains("198.18.100.2"),
        "{a}"
    );
    assert!(
        b.contains("198.18.100.2") && !b.contains("198.18.100.1"),
        "{b}"
    );
    // Detaching in one leaves the other attached.
    ok(&t.sheave(0, &["decap", "detach", "--iface", "eth0"]));
    let gone = t.sheave(0, &["decap", "status", "--iface", "eth0"]);
    assert!(
        !gone.status.success(),
        "still attached in the first namespace"
    );
    assert!(
        status(1).contains("198.18.100.2"),
        "the other namespace's program went too"
    );
    let link = Command::new("ip")
        .args(["-n", &t.names[1], "-d", "link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("prog/xdp"),
        "the other namespace's interface lost its program"
    );
}

#[test]
fn ip_netns_exec_is_refused_with_the_way_that_works() {
    require_root();
    let t = Twins::create("nx");
    let out = Command::new("ip")
        .args(["netns", "exec", &t.names[0]])
        .arg(bin_path("sheave").unwrap())
        .args([
            "decap",
            "attach",
            "--iface",
            "eth0",
            "--vip",
            "198.18.100.1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nsenter --net=/run/netns/"), "{stderr}");
    // Nothing is attached behind the refusal.
    let link = Command::new("ip")
        .args(["-n", &t.names[0], "-d", "link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"));
}
