//! Hitless restarts, upgrades and reloads, end to end: the data plane outlives `sheaved` (maps
//! and XDP link pinned in bpffs), so killing, restarting or reloading the daemon under real
//! traffic breaks no established connection and refuses no new one; a reload applies only the
//! difference, a broken file changes nothing, and `sheave teardown` removes everything.
//!
//! The figures (connections broken or failed, client retransmissions, reconcile time) are
//! printed with the prefix `figures:`; run with `--nocapture` to see them.
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use sheave_tests::{
    deploy::{Deployment, config_path, lb_config, lb_pin_dir, start_sheaved_with},
    lab::{ClientOpts, Lab, Process, VIP_PORT, VIP4, VIP6, bin_path},
    restart::{
        Control, ReconcileLog, Traffic, TrafficReport,
        config::{EXTRA_PORT, Shape, config},
        daemon::json_diff,
        layout::pin_foreign_layout,
        traffic::TrafficOpts,
    },
    traffic::http,
};

/// How long backends may take to pass their first health checks.
const SETTLE: Duration = Duration::from_secs(20);
/// How long a restarted daemon may take to answer its API.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// How long re-run health checks may take to bring the status back to what it was.
const STATUS_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `sheaved` is left down (SIGKILL) or between stop and start (SIGTERM).
const DOWN: Duration = Duration::from_secs(2);
/// Held streams per VIP in the restart scenarios (10 in all).
const HELD_PER_VIP: usize = 5;

fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab tests need root (network namespaces, XDP); run them through `cargo xtask test`"
    );
}

/// One scenario at a time: they measure interruptions and timings on a small machine, and two
/// labs pushing traffic at once would only add noise to the figures.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn vip4() -> SocketAddr {
    SocketAddr::new(VIP4.into(), VIP_PORT)
}

fn vip6() -> SocketAddr {
    SocketAddr::new(VIP6.into(), VIP_PORT)
}

/// The lab's deployment with [`config`] for `shape`, every backend up.
fn deploy(lab: &Lab, shape: &Shape) -> (Deployment, Control, serde_json::Value) {
    let d = match Deployment::start_with_config(lab, &config(lab, shape)) {
        Ok(d) => d,
        Err(e) => {
            lab.print_logs();
            panic!("deploying Sheave: {e:#}");
        }
    };
    let ctl = Control::new(lab);
    let status = ctl.wait_all_up(SETTLE).expect("backends come up");
    (d, ctl, status)
}

/// Stops the deployment (which runs `sheave teardown`) and checks that nothing is left: no
/// program on the lb's interface, no pins.
fn stop_and_check_clean(lab: Lab, d: Deployment, ctl: &Control) {
    d.stop().expect("clean stop");
    assert_eq!(ctl.xdp_prog_id().unwrap(), None, "a program stays attached");
    assert!(!ctl.pins_exist(), "{} left behind", ctl.pin_dir.display());
    lab.teardown().expect("teardown");
}

/// Whether one new connection from the client to `target` succeeds within `timeout`.
fn served(lab: &Lab, target: SocketAddr, timeout: Duration) -> Result<String, String> {
    lab.client()
        .in_netns(move || http::get(target, timeout).backend)
        .expect("enter the client's namespace")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    /// SIGKILL: a crash; nothing cleaned up.
    Kill,
    /// SIGTERM then a new start: an operator's restart or an upgrade.
    Term,
}

/// Figures of one restart.
#[derive(Debug)]
struct Restart {
    report: TrafficReport,
    /// When the old daemon was signalled, and when the new one was started.
    stopped: Instant,
    started: Instant,
    /// From starting the new daemon to its API answering.
    to_api: Duration,
    log: ReconcileLog,
    prog_before: Option<u32>,
    prog_while_down: Option<u32>,
    prog_after: Option<u32>,
    /// The status after the restart (equal to the one before, or the last that differed).
    status: Result<Duration, serde_json::Value>,
    status_before: serde_json::Value,
    /// Per VIP: packets counted right before the stop, and as soon as the new API answered.
    packets: Vec<(String, u64, u64)>,
    pins_while_down: bool,
    new_log: String,
}

/// Traffic through the lab while `sheaved` is stopped (`how`), left down for [`DOWN`], and
/// started again; then the evidence.
fn restart_under_traffic(tag: &str, how: Stop) {
    require_root();
    let _serial = serial();
    let lab = Lab::create(tag, 3).expect("create lab");
    let (mut d, ctl, status_before) = deploy(&lab, &Shape::all(&lab));
    let prog_before = ctl.xdp_prog_id().unwrap();

    let mut traffic = Traffic::start(lab.client(), vec![vip4(), vip6()], TrafficOpts::default());
    traffic
        .hold(&[vip4(), vip6()], HELD_PER_VIP)
        .expect("open held streams");
    sleep(Duration::from_secs(1));

    let packets_before = ctl.vip_packets().unwrap();
    let stopped = Instant::now();
    let (sig, name) = match how {
        Stop::Kill => (libc::SIGKILL, "sigkill"),
        Stop::Term => (libc::SIGTERM, "sigterm"),
    };
    let exit = d.stop_sheaved(sig).expect("sheaved stops");
    match how {
        Stop::Kill => assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(libc::SIGKILL)
        ),
        Stop::Term => assert!(exit.success(), "{exit}:\n{}", d.sheaved().log()),
    }
    let prog_while_down = ctl.xdp_prog_id().unwrap();
    let pins_while_down = ctl.pins_exist();
    sleep(DOWN.saturating_sub(stopped.elapsed()));

    let started = Instant::now();
    if let Err(e) = d.start_sheaved_again(&lab, &[]) {
        lab.print_logs();
        panic!("restarting sheaved: {e:#}");
    }
    let to_api = started.elapsed() + ctl.wait_api(API_TIMEOUT).expect("API answers");
    // At once: a daemon that reset the counters would have counted a fraction of a second.
    let packets_after = ctl.vip_packets().unwrap();
    sleep(Duration::from_secs(2));
    let report = traffic.finish().expect("traffic report");

    let status = ctl.wait_status(&status_before, STATUS_TIMEOUT);
    let packets = packets_before
        .iter()
        .map(|(vip, before)| {
            let after = packets_after
                .iter()
                .find(|(v, _)| v == vip)
                .map_or(0, |(_, n)| *n);
            (vip.clone(), *before, after)
        })
        .collect();
    let new_log = d.sheaved().log();
    let r = Restart {
        report,
        stopped,
        started,
        to_api,
        log: ReconcileLog::parse(&new_log),
        prog_before,
        prog_while_down,
        prog_after: ctl.xdp_prog_id().unwrap(),
        status,
        status_before,
        packets,
        pins_while_down,
        new_log,
    };
    print_figures(name, &r);
    check_restart(how, &r);
    stop_and_check_clean(lab, d, &ctl);
}

fn print_figures(name: &str, r: &Restart) {
    let down = r.report.during(r.stopped, r.started);
    let down_failed = down.iter().filter(|a| a.result.is_err()).count();
    println!(
        "figures: {name}: {}; while sheaved was down ({:?}): {} new connections, {} failed; \
         sheaved start to API {:?}, reconciled in {:?} ms (its log), adopted {:?} (layout, \
         flows); status as before after {:?}; program id {:?} -> {:?} (down) -> {:?}; VIP \
         packets (before the stop, as the new API answered) {:?}",
        r.report.summary(),
        r.started - r.stopped,
        down.len(),
        down_failed,
        r.to_api,
        r.log.reconciled_ms,
        r.log.adopted,
        r.status.as_ref().ok(),
        r.prog_before,
        r.prog_while_down,
        r.prog_after,
        r.packets,
    );
}

fn check_restart(how: Stop, r: &Restart) {
    let rep = &r.report;
    assert!(
        rep.broken().is_empty(),
        "established connections broke: {}",
        rep.summary()
    );
    assert!(
        rep.failed().is_empty(),
        "new connections failed: {}",
        rep.summary()
    );
    let down = rep.during(r.stopped, r.started);
    assert!(
        down.len() >= 10,
        "too few new connections while sheaved was down to tell: {}",
        down.len()
    );
    assert_eq!(rep.held.len(), 2 * HELD_PER_VIP);
    assert!(r.pins_while_down, "no pins while sheaved was down");
    assert!(
        r.prog_before.is_some() && r.prog_while_down == r.prog_before,
        "the program must stay attached while sheaved is down: {:?} -> {:?}",
        r.prog_before,
        r.prog_while_down
    );
    let Some((_, flows)) = r.log.adopted else {
        panic!(
            "the new sheaved did not adopt the data plane:\n{}",
            r.new_log
        );
    };
    assert!(
        flows >= rep.held.len() as u64,
        "{flows} flows kept, fewer than the {} held streams",
        rep.held.len()
    );
    assert!(
        r.log.reconciled_ms.is_some(),
        "no `reconciled in` line:\n{}",
        r.new_log
    );
    for (vip, before, after) in &r.packets {
        assert!(
            after > before,
            "{vip}: {after} packets as the new sheaved answered, {before} before the stop: \
             counters must keep counting while sheaved is down and survive it"
        );
    }
    if how == Stop::Term {
        // Each start loads a new program instance and swaps it into the pinned link.
        assert!(
            r.prog_after.is_some() && r.prog_after != r.prog_before,
            "the program was not replaced: {:?} -> {:?}",
            r.prog_before,
            r.prog_after
        );
        assert!(
            r.new_log.contains("bpf_link_update"),
            "the new sheaved did not say it updated the link:\n{}",
            r.new_log
        );
    } else {
        assert!(r.prog_after.is_some(), "no program after the restart");
    }
    // Last, so that a difference here does not hide the other evidence.
    if let Err(last) = &r.status {
        panic!(
            "status after the restart differs from before (uptime, ring rebuilds, check \
             latencies and reason counts aside):\n{}",
            json_diff(&r.status_before, last)
        );
    }
}

#[test]
fn sigkill_keeps_traffic() {
    restart_under_traffic("rkill", Stop::Kill);
}

#[test]
fn restart_replaces_program() {
    restart_under_traffic("rterm", Stop::Term);
}

/// Starts `sheave-lab-http` on `port` on every backend, answering with the backend's name.
fn extra_servers(lab: &Lab, port: u16) -> Vec<Process> {
    let listen = format!("[::]:{port}");
    let servers: Vec<Process> = lab
        .backends()
        .iter()
        .map(|b| {
            b.spawn(
                bin_path("sheave-lab-http").unwrap(),
                ["--name", b.name.as_str(), "--listen", listen.as_str()],
            )
            .unwrap()
        })
        .collect();
    for b in lab.backends() {
        b.wait_for_tcp(b.socket(false, port), Duration::from_secs(10))
            .unwrap();
    }
    servers
}

/// The backends of the VIP named `name` in a status.
fn vip_backends(status: &serde_json::Value, name: &str) -> Option<Vec<String>> {
    let vip = status["vips"]
        .as_array()?
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.contains(name)))?;
    Some(
        vip["backends"]
            .as_array()?
            .iter()
            .filter_map(|b| b["address"].as_str().map(String::from))
            .collect(),
    )
}

#[test]
fn reload_adds_vip_and_removes_backend() {
    require_root();
    let _serial = serial();
    let lab = Lab::create("rrel", 3).expect("create lab");
    let _servers = extra_servers(&lab, EXTRA_PORT);
    let (d, ctl, _) = deploy(&lab, &Shape::all(&lab));
    let extra = SocketAddr::new(VIP4.into(), EXTRA_PORT);
    assert!(
        served(&lab, extra, Duration::from_millis(500)).is_err(),
        "{extra} is served before the reload adds it"
    );

    let mut traffic = Traffic::start(lab.client(), vec![vip4()], TrafficOpts::default());
    traffic
        .hold_spread(vip4(), &["b1", "b2", "b3"], 2, 80)
        .expect("held streams on every backend");
    traffic.hold(&[vip6()], 3).expect("held IPv6 streams");
    let held = traffic.held();
    sleep(Duration::from_secs(1));

    let shape = Shape {
        vip4_backends: vec![1, 2],
        extra_vip: true,
    };
    std::fs::write(config_path(&lab), config(&lab, &shape)).unwrap();
    let t0 = Instant::now();
    let out = ctl.ok(&["config", "reload"]).expect("reload");
    let t1 = Instant::now();
    sleep(Duration::from_secs(2));

    // The new VIP answers, from every backend.
    let r = lab
        .client()
        .run_client_with(
            &extra.to_string(),
            &ClientOpts {
                count: 30,
                deadline: Duration::from_secs(30),
                ..ClientOpts::default()
            },
        )
        .unwrap();
    let report = traffic.finish().expect("traffic report");
    let again = ctl.ok(&["config", "reload"]).expect("second reload");
    let status = ctl.status().unwrap();

    let b3_streams: Vec<_> = report
        .held
        .iter()
        .filter(|h| h.target == vip4() && h.backend == "b3")
        .collect();
    let b3_broken = b3_streams.iter().filter(|h| !h.intact()).count();
    let after = report.started_after(t1);
    let failed_outside: Vec<_> = report
        .failed()
        .into_iter()
        .filter(|a| !a.overlaps(t0, t1))
        .collect();
    println!(
        "figures: reload: `sheave config reload` took {:?} and said {:?}; {}; b3's streams \
         broken: {b3_broken} of {}; new connections after the reload per backend {:?}; new VIP \
         {extra}: {:?}; second reload said {again:?}",
        t1 - t0,
        out.trim(),
        report.summary(),
        b3_streams.len(),
        TrafficReport::by_backend(after.iter().copied()),
        r.by_backend,
    );

    assert_eq!(report.held.len(), held.len());
    for h in &report.held {
        let b3_on_vip4 = h.target == vip4() && h.backend == "b3";
        assert!(
            h.intact() || b3_on_vip4,
            "a stream that the reload did not concern broke: {h:?}"
        );
    }
    assert!(
        failed_outside.is_empty(),
        "new connections failed outside the reload itself: {}",
        report.summary()
    );
    assert!(
        after.iter().all(|a| a.result.is_ok()) && after.len() >= 20,
        "new connections after the reload: {}",
        report.summary()
    );
    assert_eq!(
        TrafficReport::by_backend(after.iter().copied()).get("b3"),
        None,
        "new connections still reach the removed backend"
    );
    assert!(r.all_ok(), "the added VIP: {r:?}");
    assert!(
        r.by_backend.len() == 3,
        "the added VIP is not spread over b1..b3: {r:?}"
    );
    let b = |i: usize| lab.backends()[i].v4.to_string();
    assert_eq!(
        vip_backends(&status, &format!("{VIP4}:{VIP_PORT}")),
        Some(vec![b(0), b(1)]),
        "{status:#}"
    );
    assert_eq!(
        vip_backends(&status, &format!("{VIP4}:{EXTRA_PORT}")).map(|v| v.len()),
        Some(3),
        "{status:#}"
    );
    assert!(
        again.contains("no changes"),
        "reloading the same file again changed something: {again}"
    );
    stop_and_check_clean(lab, d, &ctl);
}

#[test]
fn broken_reload_changes_nothing() {
    require_root();
    let _serial = serial();
    let lab = Lab::create("rbad", 3).expect("create lab");
    let (d, ctl, before) = deploy(&lab, &Shape::all(&lab));
    let good = config(&lab, &Shape::all(&lab));
    let mut traffic = Traffic::start(lab.client(), vec![vip4(), vip6()], TrafficOpts::default());
    traffic.hold(&[vip4(), vip6()], 2).expect("held streams");
    sleep(Duration::from_secs(1));

    // Through the CLI: refused whole (the file's valid VIPs are not applied either), exit 1.
    let bad_address = "198.18.100.256";
    std::fs::write(
        config_path(&lab),
        format!(
            "{good}\n[[vip]]\naddress = \"{bad_address}\"\nport = 81\nprotocol = \"tcp\"\n\
             [[vip.backend]]\naddress = \"198.18.0.21\"\n"
        ),
    )
    .unwrap();
    let cli_at = Instant::now();
    let out = ctl.sheave(&["config", "reload"]).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr {stderr}");
    assert!(
        stderr.contains(bad_address),
        "the error does not name the problem: {stderr}"
    );
    assert_eq!(
        ctl.status().unwrap(),
        before,
        "a refused reload changed the status"
    );

    // Through SIGHUP: logged, and nothing changes either.
    let unknown_key = "unknown field `backends`";
    std::fs::write(
        config_path(&lab),
        format!(
            "{good}\n[[vip]]\naddress = \"{VIP4}\"\nport = 82\nprotocol = \"tcp\"\nbackends = []\n"
        ),
    )
    .unwrap();
    let hup_at = Instant::now();
    d.sheaved().signal(libc::SIGHUP).unwrap();
    // The error spans several lines (TOML's pointer at the key): look after the refusal.
    let logged = wait_for(Duration::from_secs(10), || {
        let log = d.sheaved().log();
        log.split_once("reload refused")
            .is_some_and(|(_, rest)| rest.contains(unknown_key))
    });
    assert!(logged, "no refusal logged:\n{}", d.sheaved().log());
    sleep(Duration::from_secs(1));
    let report = traffic.finish().expect("traffic report");
    println!(
        "figures: broken reload (CLI at +{:?}, SIGHUP at +{:?}): {}; CLI said {:?}",
        cli_at - report.began,
        hup_at - report.began,
        report.summary(),
        stderr.trim()
    );
    // The API answering is the proof that it survived.
    assert_eq!(
        ctl.status().expect("sheaved survives a broken SIGHUP"),
        before,
        "a refused SIGHUP changed the status"
    );
    assert!(
        report.broken().is_empty() && report.failed().is_empty(),
        "traffic suffered from a refused reload: {}",
        report.summary()
    );

    // A good file through SIGHUP is applied.
    let shape = Shape {
        vip4_backends: vec![1, 2],
        extra_vip: false,
    };
    std::fs::write(config_path(&lab), config(&lab, &shape)).unwrap();
    d.sheaved().signal(libc::SIGHUP).unwrap();
    let want = Some(vec![
        lab.backends()[0].v4.to_string(),
        lab.backends()[1].v4.to_string(),
    ]);
    let applied = wait_for(Duration::from_secs(10), || {
        ctl.status()
            .is_ok_and(|s| vip_backends(&s, &format!("{VIP4}:{VIP_PORT}")) == want)
    });
    assert!(
        applied,
        "SIGHUP did not apply a good file:\n{}",
        d.sheaved().log()
    );
    stop_and_check_clean(lab, d, &ctl);
}

/// Polls `f` every 100 ms for at most `timeout`; whether it became true.
fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > timeout {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn teardown_removes_everything() {
    require_root();
    let _serial = serial();
    let lab = Lab::create("rtear", 3).expect("create lab");
    let (mut d, ctl, _) = deploy(&lab, &Shape::all(&lab));

    // One daemon per pinned data plane: a second one on the same pins is refused, naming the
    // owner, and so is a teardown under a running daemon.
    let owner = format!("owned by sheaved (pid {})", d.sheaved().pid());
    let second = start_sheaved_with(lab.lb(), &config_path(&lab), lab.dir(), &[]);
    let e = format!(
        "{:#}",
        second.expect_err("a second sheaved started on the same pins")
    );
    assert!(e.contains(&owner), "not refused with the owner: {e}");
    let out = ctl.teardown().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "teardown under a running sheaved: {stderr}"
    );
    assert!(
        stderr.contains(&format!("sheaved (pid {})", d.sheaved().pid()))
            && stderr.contains("--stop"),
        "{stderr}"
    );
    assert!(ctl.pins_exist() && ctl.xdp_prog_id().unwrap().is_some());
    ctl.wait_api(Duration::from_secs(5))
        .expect("sheaved still answers after the refusals");

    // SIGTERM leaves the data plane running: program, pins, service.
    let exit = d.stop_sheaved(libc::SIGTERM).unwrap();
    assert!(exit.success(), "{exit}");
    assert!(ctl.xdp_prog_id().unwrap().is_some(), "SIGTERM detached");
    assert!(ctl.pins_exist(), "SIGTERM removed the pins");
    for target in [vip4(), vip6()] {
        let r = lab.client().run_client(&target.to_string(), 20).unwrap();
        assert!(r.all_ok(), "{target} without sheaved: {r:?}");
    }

    let out = ctl.teardown().unwrap();
    assert!(
        out.status.success(),
        "sheave teardown: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctl.xdp_prog_id().unwrap(), None, "a program stays attached");
    assert!(!ctl.pins_exist(), "{} stays", ctl.pin_dir.display());
    assert!(
        served(&lab, vip4(), Duration::from_secs(1)).is_err(),
        "the VIP is still served after teardown"
    );

    // A fresh start with --detach-on-exit: SIGINT removes everything itself.
    d.start_sheaved_again(&lab, &["--detach-on-exit"])
        .expect("start afresh");
    let log = d.sheaved().log();
    assert!(!log.contains("adopted"), "adopted after a teardown:\n{log}");
    ctl.wait_all_up(SETTLE).unwrap();
    let r = lab.client().run_client(&vip4().to_string(), 20).unwrap();
    assert!(r.all_ok(), "{r:?}");
    let exit = d.stop_sheaved(libc::SIGINT).unwrap();
    assert!(exit.success(), "{exit}:\n{}", d.sheaved().log());
    assert!(ctl.xdp_prog_id().unwrap().is_none() && !ctl.pins_exist());

    // `teardown --stop` stops the owner first, then removes everything.
    d.start_sheaved_again(&lab, &[]).expect("start afresh");
    ctl.wait_all_up(SETTLE).unwrap();
    let pins = ctl.pin_dir.to_string_lossy().into_owned();
    let out = ctl
        .sheave(&[
            "teardown",
            "--iface",
            &lab.lb().iface,
            "--pin-dir",
            &pins,
            "--stop",
        ])
        .unwrap();
    assert!(
        out.status.success(),
        "teardown --stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = d.stop_sheaved(libc::SIGTERM);
    assert!(
        stopped.as_ref().is_ok_and(|s| s.success()),
        "sheaved after teardown --stop: {stopped:?}"
    );
    assert_eq!(
        ctl.xdp_prog_id().unwrap(),
        None,
        "--detach-on-exit left a program"
    );
    assert!(
        !ctl.pins_exist(),
        "--detach-on-exit left {}",
        ctl.pin_dir.display()
    );
    println!(
        "figures: teardown: nothing left on {} or in bpffs",
        lab.lb().iface
    );
    stop_and_check_clean(lab, d, &ctl);
}

#[test]
fn another_layout_is_refused() {
    require_root();
    let _serial = serial();
    let lab = Lab::create("rlay", 1).expect("create lab");
    let ctl = Control::new(&lab);
    let pins = lb_pin_dir(lab.lb());
    pin_foreign_layout(&pins, 0xdead).expect("pin a foreign layout");
    let config = config_path(&lab);
    std::fs::write(&config, lb_config(&lab)).unwrap();
    let err = match start_sheaved_with(lab.lb(), &config, lab.dir(), &[]) {
        Ok(p) => {
            drop(p);
            let _ = ctl.teardown();
            panic!("sheaved adopted a data plane of another layout");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("sheave teardown"),
        "the refusal does not name `sheave teardown`: {err}"
    );
    assert_eq!(ctl.xdp_prog_id().unwrap(), None, "something was attached");
    let out = ctl.teardown().unwrap();
    assert!(
        out.status.success(),
        "sheave teardown of a foreign layout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pins.exists(), "{} stays", pins.display());
    lab.teardown().expect("teardown");
}
