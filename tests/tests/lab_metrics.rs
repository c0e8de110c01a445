//! End to end through a real Prometheus: `sheaved` runs in the lab, a Prometheus server (the
//! Debian package, installed by `cargo xtask setup`) scrapes its `/metrics` every second, and the
//! test asks Prometheus' own query API whether the per-backend counters equal, exactly, the
//! traffic the test sent.
//!
//! Exactness comes from UDP with one datagram in flight at a time: every datagram is answered by
//! a responder on the backend that received it (direct server return, so the answer does not
//! cross the load balancer), which tells the test where each datagram went and that none was
//! lost. Before sending, `sheave explain` predicts each flow's backend; the prediction, what the
//! backends saw and what Prometheus reports must all agree.
use std::{
    collections::BTreeMap,
    env,
    io::{ErrorKind, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;
use sheave_tests::{
    deploy::{self, Deployment},
    lab::{Host, Lab, Process, VIP4},
};

/// The UDP service the test sends to; only this test's traffic uses it.
const UDP_PORT: u16 = 5353;
/// Distinct flows (client source ports `FIRST_PORT..`), each scheduled once on the ring.
const FLOWS: u16 = 150;
/// Datagrams per flow: the first schedules the flow, the others hit the flow table, so packet
/// and new-flow counters differ and both are checked.
const PACKETS_PER_FLOW: u16 = 2;
const FIRST_PORT: u16 = 40_000;

/// Where Prometheus listens, inside the lb's namespace (next to sheaved's metrics).
const PROM_ADDR: &str = "127.0.0.1:9090";
/// Where sheaved serves /metrics in the lb's namespace (`deploy::start_sheaved`).
const SHEAVED_METRICS: &str = "127.0.0.1:9917";
/// Prometheus' scrape interval: short, so the test waits about a second for fresh values.
const SCRAPE_INTERVAL_S: u32 = 1;

/// Opening its (empty) TSDB takes Prometheus well under a second; the bound covers a loaded CI
/// machine.
const PROM_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Prometheus may take to show the counters after the traffic: a few scrape intervals.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(200);
/// Per-datagram wait for the backend's answer; lab round trips take well under a millisecond.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Upper bound on an HTTP answer from Prometheus (queries here return a few kilobytes).
const MAX_HTTP_BODY: u64 = 4 << 20;

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab tests need root (network namespaces, XDP); run them through `cargo xtask test`"
    );
}

/// The Prometheus server binary. Missing is a failure, not a skip: a test that passes without
/// checking anything would hide that the metrics path is untested.
fn prometheus_bin() -> PathBuf {
    let on_path = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "the Prometheus server (`prometheus`) is not installed; `cargo xtask setup` installs \
             it (Debian package `prometheus`), or run: apt-get install --no-install-recommends \
             prometheus"
        )
    })
}

#[test]
fn prometheus_scrapes_exact_per_backend_packet_counts() {
    require_root();
    let prometheus = prometheus_bin();
    let lab = Lab::create("prom", 3).expect("create lab");
    let started = Instant::now();
    match run(&lab, &prometheus) {
        Ok(()) => eprintln!("lab_metrics: passed in {:.1?}", started.elapsed()),
        Err(e) => {
            lab.print_logs();
            panic!("{e:#}");
        }
    }
    lab.teardown().expect("teardown");
}

/// The whole test; an error carries what was expected and what was seen. The deployment and
/// Prometheus are locals, so they are stopped on every path out of here.
fn run(lab: &Lab, prometheus: &Path) -> Result<()> {
    let deployment =
        Deployment::start_with_config(lab, &config(lab)).context("deploying Sheave")?;
    let lb = lab.lb();
    let mut prom = start_prometheus(lb, lab.dir(), prometheus)?;
    let ready_at = Instant::now();
    let backends = lab.backends();

    // Predictions go to sheaved's API socket, not through the data plane, so they can overlap
    // the wait for Prometheus' first scrape below.
    let predicted = predict(lab)?;
    let predict_time = ready_at.elapsed();

    // Prometheus must have scraped sheaved before the traffic, and seen nothing: only this
    // test's datagrams may move the counters (the lab's TCP VIPs carry no traffic here, and the
    // backends' answers go straight to the client), which is what makes exact equality fair.
    // The first scrape comes about 5 s after readiness: Prometheus 2.x hands new targets from
    // service discovery to the scrape manager at most every 5 s, static ones included.
    wait_for(lb, &mut prom, "the first scrape of sheaved", |q| {
        let up = q.scalar("up{job=\"sheaved\"}")?;
        ensure!(up == 1, "up{{job=\"sheaved\"}} is {up}");
        let before = q.by_backend("sheave_backend_packets_total")?;
        ensure!(
            before.len() >= backends.len(),
            "only {} backend series: {before:?}",
            before.len()
        );
        ensure!(
            before.values().all(|&n| n == 0),
            "counters moved before the test sent anything: {before:?}"
        );
        Ok(())
    })?;
    eprintln!(
        "lab_metrics: first scrape of sheaved seen in Prometheus {:.1?} after it was ready",
        ready_at.elapsed()
    );

    let t = Instant::now();
    let seen = send_traffic(lab)?;
    let sent_at = Instant::now();
    let send_time = sent_at - t;

    // Every datagram was answered, by the backend `sheave explain` predicted.
    let mut expected: BTreeMap<IpAddr, (u64, u64)> = backends
        .iter()
        .map(|b| (IpAddr::V4(b.v4), (0, 0)))
        .collect();
    for (i, (port, answers)) in seen.iter().enumerate() {
        let want = predicted[i];
        ensure!(
            answers.len() == usize::from(PACKETS_PER_FLOW),
            "flow from port {port}: {} of {PACKETS_PER_FLOW} datagrams answered",
            answers.len()
        );
        for got in answers {
            ensure!(
                *got == want,
                "flow from port {port} reached {got}; `sheave explain` predicted {want}"
            );
        }
        let e = expected
            .get_mut(&want)
            .ok_or_else(|| anyhow!("`sheave explain` predicted {want}, not a UDP VIP backend"))?;
        e.0 += u64::from(PACKETS_PER_FLOW);
        e.1 += 1;
    }
    ensure!(
        expected.values().all(|&(packets, _)| packets > 0),
        "some backend got no flow, so its counter proves little: {expected:?}"
    );

    let total = u64::from(FLOWS) * u64::from(PACKETS_PER_FLOW);
    let vip = format!("udp {VIP4}:{UDP_PORT}");
    wait_for(lb, &mut prom, "the traffic in Prometheus", |q| {
        let up = q.scalar("up{job=\"sheaved\"}")?;
        ensure!(up == 1, "up{{job=\"sheaved\"}} is {up}");
        let packets = q.by_backend("sheave_backend_packets_total")?;
        let flows = q.by_backend("sheave_backend_new_flows_total")?;
        for (addr, &(want_packets, want_flows)) in &expected {
            let got = (packets.get(addr).copied(), flows.get(addr).copied());
            ensure!(
                got == (Some(want_packets), Some(want_flows)),
                "backend {addr}: (packets, new flows) expected ({want_packets}, {want_flows}), \
                 Prometheus has {got:?}; all packets: {packets:?}"
            );
        }
        // The other backends (the IPv6 ones of the idle TCP VIP) saw nothing.
        for (addr, &n) in &packets {
            ensure!(
                expected.contains_key(addr) || n == 0,
                "backend {addr} outside the UDP VIP got {n} packets"
            );
        }
        let sum = q.scalar("sum(sheave_backend_packets_total{job=\"sheaved\"})")?;
        ensure!(sum == total, "sum over backends is {sum}, sent {total}");
        let at_vip = q.scalar(&format!(
            "sheave_vip_packets_total{{job=\"sheaved\",vip=\"{vip}\"}}"
        ))?;
        ensure!(at_vip == total, "{vip}: {at_vip} packets, sent {total}");
        let drops = q.scalar("sum(sheave_xdp_packets_total{job=\"sheaved\",action=\"drop\"})")?;
        ensure!(drops == 0, "the XDP program dropped {drops} packets");
        Ok(())
    })?;
    let latency = sent_at.elapsed();

    let per_backend: Vec<String> = backends
        .iter()
        .map(|b| {
            let (p, f) = expected[&IpAddr::V4(b.v4)];
            format!("{} ({}) {p} packets / {f} flows", b.name, b.v4)
        })
        .collect();
    eprintln!(
        "lab_metrics: {FLOWS} flows predicted by `sheave explain` in {predict_time:.1?}; \
         {total} datagrams sent and answered in {send_time:.1?}"
    );
    eprintln!(
        "lab_metrics: {vip}: {}; Prometheus showed them {latency:.1?} after the last one \
         (scrape interval {SCRAPE_INTERVAL_S}s)",
        per_backend.join(", ")
    );

    prom.kill().context("stopping Prometheus")?;
    deployment.stop().context("stopping the deployment")?;
    Ok(())
}

/// The lab's TCP VIPs plus a UDP VIP on the IPv4 VIP address over the IPv4 backends.
fn config(lab: &Lab) -> String {
    let mut toml = deploy::lb_config(lab);
    toml.push_str(&format!(
        "\n[[vip]]\naddress = \"{VIP4}\"\nport = {UDP_PORT}\nprotocol = \"udp\"\n"
    ));
    for b in lab.backends() {
        toml.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", b.v4));
    }
    toml
}

/// Starts Prometheus in `lb`'s namespace, scraping sheaved every second, with its config and
/// TSDB in the lab directory; returns once `/-/ready` answers 200.
fn start_prometheus(lb: &Host, dir: &Path, bin: &Path) -> Result<Process> {
    let config = dir.join("prometheus.yml");
    // scrape_timeout must not exceed scrape_interval, and the global default (10 s) would.
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n  scrape_timeout: \
             {SCRAPE_INTERVAL_S}s\n  evaluation_interval: {SCRAPE_INTERVAL_S}s\n\
             scrape_configs:\n  - job_name: sheaved\n    static_configs:\n      \
             - targets: ['{SHEAVED_METRICS}']\n"
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let data = dir.join("prom-data");
    let mut prom = lb.spawn(
        bin,
        [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={PROM_ADDR}"),
        ],
    )?;
    let deadline = Instant::now() + PROM_READY_TIMEOUT;
    loop {
        if let Some(st) = prom.try_status() {
            bail!(
                "Prometheus exited ({st}) before it was ready:\n{}",
                prom.log()
            );
        }
        // Connection refused while it starts, 503 while the TSDB opens.
        let last = match http_get(lb, "/-/ready") {
            Ok((200, _)) => return Ok(prom),
            Ok((status, body)) => anyhow!("HTTP {status}: {}", body.trim()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!(
                "Prometheus not ready after {PROM_READY_TIMEOUT:?} ({last:#}):\n{}",
                prom.log()
            );
        }
        thread::sleep(POLL);
    }
}

/// Polls `check` against Prometheus until it passes; fails after [`CONVERGE_TIMEOUT`] with the
/// last reason, or at once if Prometheus died.
fn wait_for(
    lb: &Host,
    prom: &mut Process,
    what: &str,
    mut check: impl FnMut(&Query) -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let q = Query { lb };
    loop {
        if let Some(st) = prom.try_status() {
            bail!(
                "Prometheus exited ({st}) waiting for {what}:\n{}",
                prom.log()
            );
        }
        let err = match check(&q) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            // Straight from the source, to tell a scrape problem from a counting problem.
            let direct = sheaved_metrics(lb).unwrap_or_else(|e| format!("unavailable: {e:#}"));
            bail!(
                "waiting for {what} for {CONVERGE_TIMEOUT:?}: {err:#}\nsheaved's /metrics now \
                 says:\n{direct}"
            );
        }
        thread::sleep(POLL);
    }
}

/// The backend `sheave explain` (asking sheaved: same hash and ring as the kernel) predicts
/// for each flow, in port order. Asked before any traffic, so every answer comes from the ring.
fn predict(lab: &Lab) -> Result<Vec<IpAddr>> {
    let socket = deploy::api_socket(lab.dir());
    let socket = socket.to_string_lossy();
    let client = lab.client().v4;
    let dst = format!("{VIP4}:{UDP_PORT}");
    (0..FLOWS)
        .map(|i| {
            let src = format!("{client}:{}", FIRST_PORT + i);
            let args = ["--json", "--socket", &socket, "explain", "udp", &src, &dst];
            let out = deploy::sheave(lab.lb(), &args)?;
            let v: Value = serde_json::from_str(&out)
                .with_context(|| format!("parsing `sheave explain` output {out:?}"))?;
            let backend = v["backend"]
                .as_str()
                .ok_or_else(|| anyhow!("`sheave explain` names no backend: {out}"))?;
            backend
                .parse()
                .with_context(|| format!("`sheave explain` backend {backend:?}"))
        })
        .collect()
}

/// Sends [`FLOWS`] flows of [`PACKETS_PER_FLOW`] datagrams from the client to the UDP VIP, one
/// datagram in flight at a time (no burst can overflow a queue on the way, so the counts are
/// exact), and returns for each flow (source port) the backend that answered each datagram.
fn send_traffic(lab: &Lab) -> Result<Vec<(u16, Vec<IpAddr>)>> {
    // The responders' sockets are opened in the backends' namespaces; a socket keeps its
    // namespace, so threads of this process can serve them.
    let responders = lab
        .backends()
        .iter()
        .map(|b| {
            let sock = b.in_netns(|| UdpSocket::bind((VIP4, UDP_PORT)))??;
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            Ok((sock, b.v4.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let served: Vec<_> = responders
            .iter()
            .map(|(sock, name)| s.spawn(|| respond(sock, name, &stop)))
            .collect();
        let sent = {
            // Stops the responders on every way out, a panic included, so the scope can end.
            let _stop = SetOnDrop(&stop);
            lab.client().in_netns(exchange)?
        };
        for (r, (_, name)) in served.into_iter().zip(&responders) {
            match r.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e).context(format!("responder on {name}")),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        sent
    })
}

/// The client side of [`send_traffic`], run in the client's namespace.
fn exchange() -> Result<Vec<(u16, Vec<IpAddr>)>> {
    let vip = SocketAddr::from((VIP4, UDP_PORT));
    let mut flows = Vec::with_capacity(usize::from(FLOWS));
    let mut buf = [0u8; 64];
    for i in 0..FLOWS {
        let port = FIRST_PORT + i;
        let sock = UdpSocket::bind(("0.0.0.0", port))
            .with_context(|| format!("binding client port {port}"))?;
        sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut answers = Vec::with_capacity(usize::from(PACKETS_PER_FLOW));
        for n in 0..PACKETS_PER_FLOW {
            sock.send_to(format!("flow {i} datagram {n}").as_bytes(), vip)?;
            // No retry on a lost answer: a second datagram would be counted too. A missing
            // answer is reported by the caller.
            match sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    ensure!(from == vip, "answer from {from}, not the VIP {vip}");
                    let name = std::str::from_utf8(&buf[..len])?;
                    answers.push(name.parse().with_context(|| format!("answer {name:?}"))?);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(e) => return Err(e).context(format!("receiving on port {port}")),
            }
        }
        flows.push((port, answers));
    }
    Ok(flows)
}

/// A backend's responder: answers every datagram with the backend's address, from the VIP
/// (direct server return), until `stop`.
fn respond(sock: &UdpSocket, name: &str, stop: &AtomicBool) -> Result<()> {
    let mut buf = [0u8; 1500];
    // The socket's read timeout bounds each wait, so `stop` is seen within 50 ms.
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((_, peer)) => {
                sock.send_to(name.as_bytes(), peer)?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Prometheus' HTTP query API, reached from inside the lb's namespace.
struct Query<'a> {
    lb: &'a Host,
}

impl Query<'_> {
    /// The instant vector `expr` evaluates to now, as (labels, value) pairs.
    fn vector(&self, expr: &str) -> Result<Vec<(Value, u64)>> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = http_get(self.lb, &path)?;
        let v: Value = serde_json::from_str(&body)
            .with_context(|| format!("HTTP {status} from Prometheus for {expr}: {body}"))?;
        ensure!(
            status == 200 && v["status"] == "success",
            "Prometheus answered {expr} with HTTP {status}: {body}"
        );
        let result = v["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow!("{expr}: no result vector: {body}"))?;
        result
            .iter()
            .map(|r| {
                // Values are strings of a float; counters here must be whole numbers.
                let s = r["value"][1]
                    .as_str()
                    .ok_or_else(|| anyhow!("{expr}: sample without value: {r}"))?;
                let f: f64 = s.parse().with_context(|| format!("{expr}: value {s:?}"))?;
                ensure!(
                    f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(53),
                    "{expr}: {s} is not a count"
                );
                Ok((r["metric"].clone(), f as u64))
            })
            .collect()
    }

    /// The single value `expr` evaluates to; absent (not scraped yet) is an error.
    fn scalar(&self, expr: &str) -> Result<u64> {
        match self.vector(expr)?[..] {
            [(_, n)] => Ok(n),
            ref other => bail!("{expr}: expected one series, got {other:?}"),
        }
    }

    /// The series of `metric` from sheaved, by their `backend` label.
    fn by_backend(&self, metric: &str) -> Result<BTreeMap<IpAddr, u64>> {
        self.vector(&format!("{metric}{{job=\"sheaved\"}}"))?
            .into_iter()
            .map(|(labels, n)| {
                let b = labels["backend"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{metric} without a backend label: {labels}"))?;
                Ok((b.parse().with_context(|| format!("backend {b:?}"))?, n))
            })
            .collect()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query parameter.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` from Prometheus in `lb`'s namespace: (status, body). HTTP/1.0, so the server
/// closes the connection after one plain (never chunked) answer; curl is not needed.
fn http_get(lb: &Host, path: &str) -> Result<(u16, String)> {
    get(lb, PROM_ADDR, path)
}

/// sheaved's own /metrics lines of the per-backend and per-VIP packet counters.
fn sheaved_metrics(lb: &Host) -> Result<String> {
    let (status, body) = get(lb, SHEAVED_METRICS, "/metrics")?;
    ensure!(status == 200, "HTTP {status}: {body}");
    Ok(body
        .lines()
        .filter(|l| {
            l.starts_with("sheave_backend_packets_total")
                || l.starts_with("sheave_vip_packets_total")
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn get(host: &Host, addr: &str, path: &str) -> Result<(u16, String)> {
    let addr: SocketAddr = addr.parse()?;
    let raw = host.in_netns(|| -> Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut raw = Vec::new();
        s.take(MAX_HTTP_BODY).read_to_end(&mut raw)?;
        Ok(raw)
    })??;
    let text = String::from_utf8(raw).context("non-UTF-8 HTTP answer")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("truncated HTTP answer from {addr}{path}: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line from {addr}{path}: {head:?}"))?;
    Ok((status, body.to_string()))
}
