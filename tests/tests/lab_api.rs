//! The control plane end to end: the `sheave` CLI against a live `sheaved` in the lab. Every
//! change takes effect without a restart and is visible in real traffic; bad input is refused
//! with a clear error and a distinct exit status and changes nothing; `config diff|apply` work;
//! API changes survive a restart of the daemon.
use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::net::UnixStream,
    process::Output,
    time::Duration,
};

use serde_json::Value;
use sheave_tests::{
    deploy::{Deployment, api_socket},
    lab::{ClientOpts, ClientReport, Host, Lab, bin_path},
};

fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab tests need root (network namespaces, XDP); run them through `cargo xtask test`"
    );
}

const VIP4: &str = "tcp:198.18.100.1:80";

/// The CLI on the lb host, pointed at the lab's sheaved.
struct Cli<'a> {
    lb: &'a Host,
    socket: String,
}

impl Cli<'_> {
    fn raw(&self, args: &[&str]) -> Output {
        self.lb
            .command(bin_path("sheave").unwrap())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run sheave")
    }

    /// Run and require success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.raw(args);
        assert!(
            out.status.success(),
            "sheave {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run and require failure with `code` and a message containing `says`.
    fn refused(&self, args: &[&str], code: i32, says: &str) {
        let out = self.raw(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "sheave {}: exit {:?}, stderr {stderr}",
            args.join(" "),
            out.status.code()
        );
        assert!(
            stderr.contains(says),
            "sheave {}: {stderr:?} does not say {says:?}",
            args.join(" ")
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// backend address → (weight, state, ring share) of the IPv4 VIP.
    fn backends(&self) -> BTreeMap<String, (u64, String, f64)> {
        let v = self.json(&["vip", "show", VIP4]);
        v["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["address"].as_str().unwrap().to_string(),
                    (
                        b["weight"].as_u64().unwrap(),
                        b["state"].as_str().unwrap().to_string(),
                        b["ring_share"].as_f64().unwrap(),
                    ),
                )
            })
            .collect()
    }
}

/// `n` new connections to the IPv4 VIP from fixed source ports starting at `base`.
fn connect(lab: &Lab, base: u16, n: usize) -> ClientReport {
    let r = lab
        .client()
        .run_client_with(
            "198.18.100.1:80",
            &ClientOpts {
                count: n,
                deadline: Duration::from_secs(30),
                source_port_base: Some(base),
                ..ClientOpts::default()
            },
        )
        .unwrap();
    assert!(r.all_ok(), "{r:?}");
    r
}

/// One raw HTTP request on the API socket (for what the CLI never sends, like garbage JSON).
fn raw_http(socket: &str, request: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

const CONFIG: &str = r#"
[dataplane]
encap_source_v4 = "198.18.200.0/24"
encap_source_v6 = "2001:db8:200::/120"

[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
[[vip.backend]]
address = "198.18.0.21"
[[vip.backend]]
address = "198.18.0.22"

[[vip]]
address = "2001:db8:100::1"
port = 80
protocol = "tcp"
[[vip.backend]]
address = "2001:db8::21"
[[vip.backend]]
address = "2001:db8::22"
[[vip.backend]]
address = "2001:db8::23"
"#;

#[test]
fn operators_change_a_running_load_balancer_through_the_cli() {
    require_root();
    let lab = Lab::create("api", 3).expect("create lab");
    let mut d = Deployment::start_with_config(&lab, CONFIG).expect("deploy");
    let cli = Cli {
        lb: lab.lb(),
        socket: api_socket(lab.dir()).to_string_lossy().into_owned(),
    };

    // Start: two IPv4 backends, half the ring each; traffic reaches only them.
    let b = cli.backends();
    assert_eq!(b.len(), 2);
    assert!(
        b.values()
            .all(|(_, s, share)| s == "up" && (share - 0.5).abs() < 0.01),
        "{b:?}"
    );
    let r = connect(&lab, 41000, 60);
    assert_eq!(r.count("b3"), 0, "{r:?}");

    // Add b3: it takes new flows at once.
    cli.ok(&["backend", "add", VIP4, "198.18.0.23"]);
    let r = connect(&lab, 41100, 90);
    assert!(r.count("b3") > 15, "b3 got too few new flows: {r:?}");

    // Weight 0 for b1, then disable b2: new flows avoid them; enable brings b2 back. (Drains
    // end by themselves once a backend's flows do: lab_health tests them.)
    cli.ok(&["backend", "set-weight", VIP4, "198.18.0.21", "0"]);
    let b = cli.backends();
    assert_eq!(b["198.18.0.21"], (0, "weight-0".into(), 0.0));
    let r = connect(&lab, 41200, 60);
    assert_eq!(r.count("b1"), 0, "{r:?}");
    cli.ok(&["backend", "disable", "198.18.0.22"]);
    assert_eq!(cli.backends()["198.18.0.22"].1, "disabled");
    let r = connect(&lab, 41300, 40);
    assert_eq!(r.count("b3"), 40, "only b3 takes new flows now: {r:?}");
    cli.ok(&["backend", "enable", "198.18.0.22"]);
    let r = connect(&lab, 41400, 60);
    assert!(r.count("b2") > 10 && r.count("b1") == 0, "{r:?}");

    // An established connection keeps its backend while the ring changes under it.
    let client = lab.client().clone();
    let stream = std::thread::spawn(move || {
        client
            .run_client_with(
                "198.18.100.1:80",
                &ClientOpts {
                    count: 1,
                    timeout: Duration::from_secs(10),
                    deadline: Duration::from_secs(20),
                    path: "/stream?seconds=3&interval_ms=100".into(),
                    source_port_base: Some(42000),
                    ..ClientOpts::default()
                },
            )
            .unwrap()
    });
    // Wait (bounded) until the stream's flow is in the flow table.
    let explain = [
        "explain",
        "tcp",
        "198.18.0.10:42000",
        "->",
        "198.18.100.1:80",
    ];
    let mut during = cli.json(&explain);
    for _ in 0..100 {
        if during["source"] == "flow-table" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        during = cli.json(&explain);
    }
    assert_eq!(during["source"], "flow-table", "{during}");
    let serving = during["backend"].as_str().unwrap().to_string();
    for addr in ["198.18.0.22", "198.18.0.23"] {
        cli.ok(&[
            "backend",
            "set-weight",
            VIP4,
            addr,
            if addr == serving { "0" } else { "100" },
        ]);
    }
    let r = stream.join().unwrap();
    assert!(
        r.all_ok(),
        "the stream broke when its backend left the ring: {r:?}"
    );
    cli.ok(&["backend", "set-weight", VIP4, "198.18.0.22", "100"]);
    cli.ok(&["backend", "set-weight", VIP4, "198.18.0.23", "100"]);

    // Bad input: a clear error, its own exit status, and nothing changes.
    let before = cli.json(&["status"])["vips"].clone();
    cli.refused(
        &["backend", "add", "tcp:198.18.100.9:80", "198.18.0.24"],
        3,
        "no VIP",
    );
    cli.refused(
        &["backend", "add", VIP4, "198.18.0.23"],
        4,
        "already a backend",
    );
    cli.refused(&["backend", "del", VIP4, "198.18.0.99"], 3, "not a backend");
    cli.refused(
        &["backend", "set-weight", VIP4, "198.18.0.21", "70000"],
        2,
        "70000",
    );
    cli.refused(&["backend", "add", VIP4, "198.18.0.300"], 2, "198.18.0.300");
    cli.refused(&["vip", "add", "tcp:198.18.100.1:80"], 4, "exists already");
    cli.refused(&["vip", "add", "sctp:198.18.100.2:80"], 2, "sctp");
    cli.refused(
        &["vip", "add", "tcp:198.18.100.2:80", "--ring-size", "1000"],
        1,
        "prime",
    );
    let (status, body) = raw_http(
        &cli.socket,
        "POST /v1/vips HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 9\r\nConnection: close\r\n\r\n{garbage]",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid request body"), "{body}");
    assert_eq!(
        cli.json(&["status"])["vips"],
        before,
        "a refused request changed the state"
    );

    // A VIP added through the API serves traffic.
    cli.ok(&["vip", "add", "tcp:198.18.100.1:8080", "--ring-size", "251"]);
    cli.ok(&["backend", "add", "tcp:198.18.100.1:8080", "198.18.0.21"]);
    let stats = cli.json(&["stats"]);
    assert!(stats["events"]["tx"].as_u64().unwrap() > 0, "{stats}");

    // config diff shows the difference; a broken config applies nothing; apply makes it so.
    let file = lab.dir().join("next.toml");
    std::fs::write(
        &file,
        CONFIG.replace("[[vip.backend]]\naddress = \"2001:db8::21\"\n", ""),
    )
    .unwrap();
    let diff = cli.ok(&["config", "diff", file.to_str().unwrap()]);
    for line in [
        "- vip tcp 198.18.100.1:8080",
        "- backend 198.18.0.23 from tcp 198.18.100.1:80",
        "- backend 2001:db8::21 from tcp [2001:db8:100::1]:80",
    ] {
        assert!(diff.contains(line), "diff lacks {line:?}:\n{diff}");
    }
    let broken = lab.dir().join("broken.toml");
    std::fs::write(
        &broken,
        CONFIG.replace(
            "port = 80\nprotocol = \"tcp\"",
            "port = 80\nprotocol = \"tcpp\"",
        ),
    )
    .unwrap();
    let before = cli.json(&["status"])["vips"].clone();
    cli.refused(
        &["config", "apply", broken.to_str().unwrap()],
        1,
        "invalid configuration",
    );
    assert_eq!(cli.json(&["status"])["vips"], before);
    cli.ok(&["config", "apply", file.to_str().unwrap()]);
    assert!(
        cli.ok(&["config", "diff", file.to_str().unwrap()])
            .contains("no changes")
    );
    assert_eq!(cli.json(&["vip", "list"]).as_array().unwrap().len(), 2);

    // API changes survive a restart (same config file): same VIPs, backends, weights, disabled
    // backends.
    cli.ok(&["backend", "disable", "198.18.0.22"]);
    let before = cli.json(&["vip", "list"]);
    d.restart_sheaved(&lab).expect("restart");
    assert_eq!(
        strip_rebuilds(&cli.json(&["vip", "list"])),
        strip_rebuilds(&before)
    );
    let r = connect(&lab, 41500, 30);
    // b2 is still disabled after the restart: every new flow goes to b1.
    assert_eq!(r.count("b1"), 30, "{r:?}");

    // Metrics are served: traffic per backend, and the API requests of this daemon.
    let metrics = lab
        .lb()
        .in_netns(|| {
            let mut s = TcpStream::connect("127.0.0.1:9917").unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .unwrap();
    assert!(metrics.contains("sheave_build_info"), "{metrics}");
    // b1 carried the 30 connections since the restart (the maps, and so counters, are new).
    let b1_packets: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sheave_backend_packets_total{backend=\"198.18.0.21\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no packet counter for b1:\n{metrics}"));
    assert!(
        b1_packets >= 30 * 4,
        "b1: {b1_packets} packets for 30 connections"
    );
    assert!(
        metrics.contains("sheave_api_requests_total{endpoint=\"vip_list\",result=\"ok\"} 1"),
        "{metrics}"
    );

    d.stop().expect("clean stop");
    lab.teardown().expect("teardown");
}

/// `vip list` without what a restart renumbers: ring rebuild counts restart from zero, and
/// backend ids are assigned afresh (the maps are new too; pinning them is a later step).
fn strip_rebuilds(v: &Value) -> String {
    let mut v = v.clone();
    for vip in v.as_array_mut().unwrap() {
        vip["ring_rebuilds"] = 0.into();
        for b in vip["backends"].as_array_mut().unwrap() {
            b["id"] = 0.into();
        }
    }
    v.to_string()
}
