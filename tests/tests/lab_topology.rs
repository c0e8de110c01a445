//! The lab itself, without any load balancer: wiring, addressing, routing, the lab HTTP server
//! and client, process guards, teardown and the sweep of stale namespaces.
//!
//! Needs root (network namespaces); skipped with a message otherwise.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sheave_tests::lab::{
    self, CLIENT_MTU, ClientOpts, Host, LAN_MTU, Lab, Process, VIP_PORT, VIP4, VIP6, bin_path,
};

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Without root the lab cannot exist: a failure, as in the other lab tests, never a quiet
/// pass that would read as a tested lab.
macro_rules! require_root {
    () => {
        assert!(
            is_root(),
            "the lab tests need root (network namespaces); run them through `cargo xtask test`"
        );
    };
}

fn start_http(host: &Host) -> Process {
    let bin = bin_path("sheave-lab-http").expect("sheave-lab-http is built");
    let p = host
        .spawn(&bin, ["--name", &host.name, "--listen", "[::]:80"])
        .expect("spawn sheave-lab-http");
    if let Err(e) = host.wait_for_tcp(host.socket(false, VIP_PORT), Duration::from_secs(5)) {
        panic!("{} did not start: {e:#}\n{}", p.label(), p.log());
    }
    p
}

fn mtu(host: &Host) -> u32 {
    let out = host
        .run("ip", &["-o", "link", "show", "dev", &host.iface])
        .unwrap();
    let field = out.split_whitespace().skip_while(|w| *w != "mtu").nth(1);
    field
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {out:?}"))
}

#[test]
fn lab_topology() {
    require_root!();
    let lab = Lab::create("t", 3).expect("create lab");
    let names = lab.namespaces();
    assert_eq!(names.len(), 6, "switch, client, lb, 3 backends: {names:?}");
    let (client, lb) = (lab.client(), lab.lb());

    assert_eq!(mtu(client), CLIENT_MTU);
    for h in lab.backends().iter().chain([lb]) {
        assert_eq!(mtu(h), LAN_MTU, "{}", h.name);
    }
    // The VIPs are routed toward the lb, whose kernel has no route for them.
    let via4 = client
        .run("ip", &["route", "get", &VIP4.to_string()])
        .unwrap();
    let via6 = client
        .run("ip", &["-6", "route", "get", &VIP6.to_string()])
        .unwrap();
    assert!(via4.contains(&format!("via {}", lb.v4)), "{via4}");
    assert!(via6.contains(&format!("via {}", lb.v6)), "{via6}");

    let mut servers: Vec<Process> = lab.backends().iter().map(start_http).collect();

    // Every backend directly, over both families (the server's [::] socket takes IPv4 too).
    for b in lab.backends() {
        for v6 in [false, true] {
            let target = b.socket(v6, VIP_PORT).to_string();
            let r = client.run_client(&target, 20).expect("run client");
            if !r.all_ok() || r.count(&b.name) != 20 {
                lab.print_logs();
                panic!("{target}: expected 20 answers from {}: {r:?}", b.name);
            }
        }
    }

    // Concurrency option plumbing.
    let opts = ClientOpts {
        count: 40,
        concurrency: 8,
        ..ClientOpts::default()
    };
    let b1 = &lab.backends()[0];
    let r = client
        .run_client_with(&b1.socket(true, VIP_PORT).to_string(), &opts)
        .unwrap();
    assert!(r.all_ok() && r.count("b1") == 40, "{r:?}");

    // Nothing answers on the VIP without a load balancer.
    let opts = ClientOpts {
        count: 3,
        timeout: Duration::from_millis(500),
        ..ClientOpts::default()
    };
    for vip in [
        SocketAddr::new(VIP4.into(), VIP_PORT),
        SocketAddr::new(VIP6.into(), VIP_PORT),
    ] {
        let r = client.run_client_with(&vip.to_string(), &opts).unwrap();
        assert_eq!(r.ok, 0, "{vip} answered without a load balancer: {r:?}");
        eprintln!("{vip} without LB: {:?}", r.errors);
    }

    check_stream(client, &lab.backends()[1]);

    // SIGTERM makes the server exit cleanly.
    let mut b3 = servers.pop().unwrap();
    b3.signal(libc::SIGTERM).unwrap();
    let status = b3.wait_timeout(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        b3.log()
    );

    drop(servers);
    lab.teardown().expect("teardown");
    for n in &names {
        assert!(!lab::netns_exists(n), "{n} survived teardown");
    }
}

/// `/stream` keeps one connection open and sends numbered lines on schedule.
fn check_stream(client: &Host, backend: &Host) {
    let addr = backend.socket(true, VIP_PORT);
    let lines = client
        .in_netns(move || -> std::io::Result<Vec<String>> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /stream?seconds=1&interval_ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut r = BufReader::new(s);
            let mut line = String::new();
            // Skip the head.
            while r.read_line(&mut line)? > 0 && line != "\r\n" {
                line.clear();
            }
            r.lines().take(100).collect()
        })
        .unwrap()
        .expect("stream");
    let want: Vec<String> = (0..5).map(|i| format!("{} {i}", backend.name)).collect();
    assert_eq!(lines, want);
}

/// Guards stop what they started; a dropped lab deletes its namespaces and directory.
#[test]
fn process_guard_and_drop_cleanup() {
    require_root!();
    let lab = Lab::create("g", 1).expect("create lab");
    let names = lab.namespaces();
    let dir = lab.dir().to_path_buf();
    let b1 = &lab.backends()[0];

    let mut p = b1
        .spawn("sh", ["-c", "echo started; exec sleep 30"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.log().contains("started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.log(), "started\n");
    assert!(p.is_running());
    let t = Instant::now();
    let status = p.kill().unwrap();
    assert!(!status.success());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "SIGTERM should be enough"
    );
    assert!(!p.is_running());
    assert!(
        p.signal(libc::SIGTERM).is_err(),
        "a reaped process is never signalled"
    );

    // Something left running in the lab (here outside any guard) does not block the cleanup.
    let mut stray = b1
        .command("sh")
        .args(["-c", "echo ready; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // spawn() returns once nsenter runs, before it has entered the namespace: wait for the
    // line that proves the shell runs inside.
    let mut ready = String::new();
    BufReader::new(stray.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    drop(lab);
    for n in &names {
        assert!(!lab::netns_exists(n), "{n} survived drop");
    }
    assert!(!dir.exists() || std::env::var(lab::KEEP_ENV).is_ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = stray.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = stray.kill();
            panic!("the stray process survived the lab");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "the stray process was killed: {status}");
}

/// Namespaces of dead processes are swept; live labs are not.
#[test]
fn sweep_stale_namespaces() {
    require_root!();
    // Above pid_max (at most 2^22), so no process can have this pid; derived from ours so that
    // two suites running at once on one host do not collide.
    let stale = format!("sl{}zz-sw", 4_200_000 + std::process::id() % 700_000);
    let stale = stale.as_str();
    let ok = Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(ok.success());
    let lab = Lab::create("s", 1).expect("create lab");
    let swept = lab::sweep_stale().unwrap();
    // create() already swept it (or a concurrent test did); either way it is gone.
    assert!(!lab::netns_exists(stale), "swept {swept:?}");
    for n in lab.namespaces() {
        assert!(lab::netns_exists(&n), "{n} of a live lab was swept");
    }
    lab.teardown().unwrap();
}
