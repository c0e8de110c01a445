//! End to end: real TCP connections from a client namespace through `sheaved`'s XDP program to
//! three backends that decapsulate with `sheave decap` and answer the client directly (DSR).
use std::time::Duration;

use sheave_tests::{
    deploy::{Deployment, decap_pin_dir, sheave},
    lab::{ClientOpts, ClientReport, Lab, VIP_PORT, VIP4, VIP6, bin_path},
};

const CONNECTIONS: usize = 300;

fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab tests need root (network namespaces, XDP); run them through `cargo xtask test`"
    );
}

/// Every connection completed, and each backend served within ±20% of an even share.
fn assert_even(report: &ClientReport, backends: usize) {
    assert!(
        report.all_ok(),
        "not every connection completed: {report:?}"
    );
    let even = CONNECTIONS as f64 / backends as f64;
    for b in 1..=backends {
        let n = report.count(&format!("b{b}")) as f64;
        assert!(
            (n - even).abs() <= 0.2 * even,
            "b{b} served {n} of {CONNECTIONS} (even: {even:.0}): {report:?}"
        );
    }
}

fn xdp_attached(host: &sheave_tests::lab::Host) -> bool {
    let out = host
        .run("ip", &["-d", "link", "show", "dev", &host.iface])
        .unwrap();
    out.contains("prog/xdp")
}

#[test]
fn tcp_through_the_load_balancer_reaches_every_backend_over_ipv4_and_ipv6() {
    require_root();
    let lab = Lab::create("e2e", 3).expect("create lab");
    let deployment = match Deployment::start(&lab) {
        Ok(d) => d,
        Err(e) => {
            lab.print_logs();
            panic!("deploying Sheave: {e:#}");
        }
    };
    assert!(xdp_attached(lab.lb()), "sheaved did not attach XDP");
    let client = lab.client();

    for (name, target) in [
        ("IPv4", format!("{VIP4}:{VIP_PORT}")),
        ("IPv6", format!("[{VIP6}]:{VIP_PORT}")),
    ] {
        let opts = ClientOpts {
            count: CONNECTIONS,
            deadline: Duration::from_secs(60),
            // Fixed 5-tuples: the spread depends only on the hash and the ring, not on luck.
            source_port_base: Some(40_000),
            ..ClientOpts::default()
        };
        let report = client.run_client_with(&target, &opts).expect("client runs");
        eprintln!("{name}: {:?}", report.by_backend);
        assert_even(&report, lab.backends().len());
    }

    // The host keeps working: traffic to the LB's own addresses and from the LB to backends
    // (replies arrive through the XDP program) is untouched.
    let lb = lab.lb();
    let _own_server = lb
        .spawn(
            bin_path("sheave-lab-http").unwrap(),
            ["--name", "lb-itself", "--listen", "[::]:8080"],
        )
        .unwrap();
    lb.wait_for_tcp(lb.socket(false, 8080), Duration::from_secs(5))
        .unwrap();
    for v6 in [false, true] {
        let r = client
            .run_client(&lb.socket(v6, 8080).to_string(), 20)
            .unwrap();
        assert!(r.all_ok() && r.count("lb-itself") == 20, "{r:?}");
        let b1 = &lab.backends()[0];
        let r = lb
            .run_client(&b1.socket(v6, VIP_PORT).to_string(), 20)
            .unwrap();
        assert!(r.all_ok() && r.count("b1") == 20, "{r:?}");
    }

    // A host route on the LB to a non-VIP address (inside the VIP prefix the client routes to
    // the LB) keeps working: the program passes the packet and the kernel forwards it.
    let b1 = &lab.backends()[0];
    b1.run("ip", &["addr", "add", "198.18.100.50/32", "dev", "lo"])
        .unwrap();
    lb.run(
        "ip",
        &[
            "route",
            "add",
            "198.18.100.50/32",
            "via",
            &b1.v4.to_string(),
        ],
    )
    .unwrap();
    let r = client.run_client("198.18.100.50:80", 20).unwrap();
    assert!(
        r.all_ok() && r.count("b1") == 20,
        "routed non-VIP traffic: {r:?}"
    );

    // The decap programs counted what they decapsulated.
    let b1 = &lab.backends()[0];
    let pins = decap_pin_dir(&lab, b1);
    let status = sheave(
        b1,
        &[
            "decap",
            "status",
            "--iface",
            &b1.iface,
            "--pin-dir",
            &pins.to_string_lossy(),
            "--json",
        ],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        v["counters"]["decapsulated"].as_u64().unwrap() > 0,
        "{status}"
    );

    deployment.stop().expect("clean stop");
    assert!(!xdp_attached(lab.lb()), "sheaved left its program attached");
    assert!(
        !pins.exists(),
        "decap pins left behind at {}",
        pins.display()
    );
    lab.teardown().expect("teardown");
}

#[test]
fn a_broken_config_is_refused_and_nothing_is_attached() {
    require_root();
    let lab = Lab::create("badcfg", 1).expect("create lab");
    let lb = lab.lb();
    let cases = [
        (
            "unknown key",
            "[[vip]]\naddress = \"198.18.100.1\"\nport = 80\nprotocol = \"tcp\"\nbackends = []\n",
            "unknown field `backends`",
        ),
        (
            "bad address",
            "[[vip]]\naddress = \"198.18.100.256\"\nport = 80\nprotocol = \"tcp\"\n[[vip.backend]]\naddress = \"198.18.0.21\"\n",
            "198.18.100.256",
        ),
        (
            "no backend",
            "[[vip]]\naddress = \"198.18.100.1\"\nport = 80\nprotocol = \"tcp\"\n",
            "has no backend",
        ),
        (
            "wrong type",
            "[[vip]]\naddress = \"198.18.100.1\"\nport = \"http\"\nprotocol = \"tcp\"\n",
            "invalid type",
        ),
    ];
    for (what, text, expect) in cases {
        let path = lab.dir().join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&path, text).unwrap();
        let out = lb
            .command(bin_path("sheaved").unwrap())
            .args(["--config", path.to_str().unwrap(), "--iface", &lb.iface])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: sheaved accepted it");
        assert!(
            stderr.contains(expect),
            "{what}: message does not name the problem: {stderr}"
        );
        assert!(!xdp_attached(lb), "{what}: something was attached");
    }
    lab.teardown().expect("teardown");
}

/// Jumbo frames (MTU 9000 on the segment, as data centres run it): the programs are built for
/// multi-buffer XDP, so they attach at that MTU in native mode, and bulk TCP crosses the VIP
/// with jumbo frames: uploads through the load balancer (encapsulated, each frame several
/// buffers in XDP), downloads straight from the backend (direct server return), both checked
/// byte for byte, over IPv4 and IPv6.
#[test]
fn jumbo_frames_carry_bulk_tcp_through_the_vip_both_ways() {
    use sheave_tests::{lab::Mtu, traffic::bulk};
    const BYTES: u64 = 16 << 20;
    require_root();
    let lab = Lab::create_with_mtu("jumbo", 2, Mtu::JUMBO).expect("create lab");
    let deployment = match Deployment::start(&lab) {
        Ok(d) => d,
        Err(e) => {
            lab.print_logs();
            panic!("deploying Sheave at MTU 9000: {e:#}");
        }
    };
    let socket = sheave_tests::deploy::api_socket(lab.dir());
    let socket = socket.to_string_lossy();
    let status = sheave(lab.lb(), &["--socket", &socket, "--json", "status"]).expect("status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    assert_eq!(
        status["xdp_mode"], "native",
        "not attached natively at MTU 9000: {status:#}"
    );
    let client = lab.client();
    for vip in [
        std::net::SocketAddr::new(VIP4.into(), VIP_PORT),
        std::net::SocketAddr::new(VIP6.into(), VIP_PORT),
    ] {
        let served = bulk::upload(client, vip, BYTES)
            .unwrap_or_else(|e| panic!("uploading {BYTES} bytes to {vip}: {e:#}"));
        bulk::download(client, vip, BYTES)
            .unwrap_or_else(|e| panic!("downloading {BYTES} bytes from {vip}: {e:#}"));
        eprintln!("jumbo: {BYTES} bytes up to {served} and down through {vip}");
    }
    // The uploads crossed the XDP program in jumbo frames: its own counters say how large.
    let stats = sheave(lab.lb(), &["--socket", &socket, "--json", "stats"]).expect("stats");
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats is JSON");
    let (mut packets, mut bytes) = (0u64, 0u64);
    for (_, v) in stats["vips"].as_object().expect("vips") {
        packets += v["packets"].as_u64().unwrap_or(0);
        bytes += v["bytes"].as_u64().unwrap_or(0);
    }
    assert!(packets > 0, "no packet counted: {stats:#}");
    let mean = bytes / packets;
    eprintln!("jumbo: {packets} packets, {bytes} bytes through XDP, {mean} bytes on average");
    assert!(
        bytes >= 2 * BYTES && mean > 4000,
        "the uploads did not cross XDP in jumbo frames: {packets} packets, {bytes} bytes"
    );
    deployment.stop().expect("clean stop");
    lab.teardown().expect("teardown");
}
