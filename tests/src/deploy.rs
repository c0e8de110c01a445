//! Sheave deployed into a [`Lab`]: `sheaved` on the lb host with a config for both VIPs over all
//! backends, the decap program and an HTTP server on every backend. Used by the end-to-end tests
//! and by `cargo xtask demo`, so both exercise the same deployment.
use std::{
    fmt::Write as _,
    path::PathBuf,
    process::ExitStatus,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::lab::{Host, Lab, Process, VIP_PORT, VIP4, VIP6, bin_path};

/// Outer-source prefixes used in the lab (host bits vary per flow).
pub const ENCAP_SOURCE_V4: &str = "198.18.200.0/24";
pub const ENCAP_SOURCE_V6: &str = "2001:db8:200::/120";

/// Where `sheaved` serves `/metrics` inside the lb's namespace (its default address).
pub const METRICS_ADDR: &str = "127.0.0.1:9917";

/// How long a backend's HTTP server may take to listen.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `sheaved` may take to load, fill its maps and attach.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The TOML configuration for `sheaved` in `lab`: a TCP VIP per family on port 80 over every
/// backend, IPv4 VIP → IPv4 backends, IPv6 VIP → IPv6 backends.
pub fn lb_config(lab: &Lab) -> String {
    let mut s = format!(
        "[dataplane]\nencap_source_v4 = \"{ENCAP_SOURCE_V4}\"\n\
         encap_source_v6 = \"{ENCAP_SOURCE_V6}\"\n"
    );
    for v6 in [false, true] {
        let vip = if v6 {
            VIP6.to_string()
        } else {
            VIP4.to_string()
        };
        let _ = write!(
            s,
            "\n[[vip]]\naddress = \"{vip}\"\nport = {VIP_PORT}\nprotocol = \"tcp\"\n"
        );
        for b in lab.backends() {
            let _ = write!(s, "[[vip.backend]]\naddress = \"{}\"\n", b.addr(v6));
        }
    }
    s
}

/// A running deployment. Dropping it stops `sheaved` and detaches every decap program; call
/// [`Deployment::stop`] to see errors.
pub struct Deployment {
    /// (netns, port, pin dir) of the pass-through program on the switch side of the lb's veth.
    peer_pass: Option<(String, String, PathBuf)>,
    /// `None` only while starting.
    sheaved: Option<Process>,
    pub servers: Vec<Process>,
    /// (backend, pin dir) of every attached decap program.
    decaps: Vec<(Host, PathBuf)>,
    /// The lb host, whose data plane `stop` tears down.
    lb: Option<Host>,
}

impl Deployment {
    /// The `sheaved` process.
    pub fn sheaved(&self) -> &Process {
        self.sheaved.as_ref().expect("started")
    }

    /// Start everything and wait until `sheaved` says it is ready and every server listens.
    pub fn start(lab: &Lab) -> Result<Deployment> {
        Deployment::start_with_config(lab, &lb_config(lab))
    }

    /// Like [`Deployment::start`] with another `sheaved` configuration (its VIPs must use the
    /// lab's VIP addresses, which the backends decapsulate and serve).
    pub fn start_with_config(lab: &Lab, config_text: &str) -> Result<Deployment> {
        sweep_stale_pins();
        let config = config_path(lab);
        std::fs::write(&config, config_text)?;
        // veth hands the lb's XDP_TX frames only to a peer running an XDP program.
        let pass_dir = pin_root().join(format!("{}-sw-pass", lab.prefix()));
        let port = format!("p-{}", lab.lb().name);
        let pins = pass_dir.to_string_lossy().into_owned();
        sheave_in(
            lab.switch_netns(),
            &["xdp-pass", "attach", "--iface", &port, "--pin-dir", &pins],
        )?;
        let mut d = Deployment {
            peer_pass: Some((lab.switch_netns().to_string(), port, pass_dir)),
            sheaved: None,
            servers: Vec::new(),
            decaps: Vec::new(),
            lb: Some(lab.lb().clone()),
        };
        // From here on, an error drops `d`, which undoes whatever was set up.
        d.sheaved = Some(start_sheaved(lab.lb(), &config, lab.dir())?);
        for b in lab.backends() {
            let dir = decap_pin_dir(lab, b);
            let (v4, v6, pins) = (VIP4.to_string(), VIP6.to_string(), dir.to_string_lossy());
            sheave(
                b,
                &[
                    "decap",
                    "attach",
                    "--iface",
                    &b.iface,
                    "--pin-dir",
                    &pins,
                    "--vip",
                    &v4,
                    "--vip",
                    &v6,
                ],
            )?;
            d.decaps.push((b.clone(), dir));
            d.servers.push(spawn_server(b)?);
        }
        for b in lab.backends() {
            b.wait_for_tcp(b.socket(false, VIP_PORT), SERVER_TIMEOUT)?;
        }
        Ok(d)
    }

    /// Kills the HTTP server of backend `i` (0 for b1) with SIGKILL, as a crash would: the
    /// listening socket is gone at once, so new connections are refused (RST) and established
    /// ones are reset. Returns once the process is reaped.
    pub fn crash_server(&mut self, i: usize) -> Result<()> {
        let p = self
            .servers
            .get_mut(i)
            .with_context(|| format!("no server {i}"))?;
        if p.is_running() {
            p.signal(libc::SIGKILL)?;
        }
        p.kill().map(drop)
    }

    /// Starts the HTTP server of backend `i` again (after [`Deployment::crash_server`]) and
    /// waits until it accepts connections.
    pub fn start_server(&mut self, lab: &Lab, i: usize) -> Result<()> {
        let b = lab
            .backends()
            .get(i)
            .with_context(|| format!("no backend {i}"))?;
        if i >= self.servers.len() {
            bail!("no server {i}");
        }
        self.servers[i].kill()?;
        self.servers[i] = spawn_server(b)?;
        b.wait_for_tcp(b.socket(false, VIP_PORT), SERVER_TIMEOUT)
    }

    /// Stop `sheaved` (SIGTERM) and start it again with the same configuration, as an operator
    /// restarting the service would.
    pub fn restart_sheaved(&mut self, lab: &Lab) -> Result<()> {
        if let Some(mut p) = self.sheaved.take() {
            p.signal(libc::SIGTERM)?;
            match p.wait_timeout(Duration::from_secs(10)) {
                Some(st) if st.success() => {}
                other => bail!("sheaved did not stop cleanly ({other:?}):\n{}", p.log()),
            }
        }
        let config = config_path(lab);
        self.sheaved = Some(start_sheaved(lab.lb(), &config, lab.dir())?);
        Ok(())
    }

    /// Sends `sig` to `sheaved` (SIGKILL: a crash; SIGTERM: a stop, which leaves the data plane
    /// running) and reaps it within 10 s; its exit status. The process (and its log) stays until
    /// [`Deployment::start_sheaved_again`].
    pub fn stop_sheaved(&mut self, sig: i32) -> Result<ExitStatus> {
        let p = self.sheaved.as_mut().context("sheaved was never started")?;
        p.signal(sig)?;
        p.wait_timeout(Duration::from_secs(10))
            .with_context(|| format!("sheaved still runs 10 s after signal {sig}"))
    }

    /// Starts `sheaved` again with the same configuration file and `extra` arguments after
    /// [`Deployment::stop_sheaved`], as an operator or a service manager would; returns once it
    /// is ready.
    pub fn start_sheaved_again(&mut self, lab: &Lab, extra: &[&str]) -> Result<()> {
        if let Some(p) = self.sheaved.as_mut()
            && p.is_running()
        {
            bail!("sheaved (pid {}) still runs", p.pid());
        }
        let p = start_sheaved_with(lab.lb(), &config_path(lab), lab.dir(), extra)?;
        self.sheaved = Some(p);
        Ok(())
    }

    /// Detach the decap programs, stop `sheaved` and remove the data plane it leaves running
    /// (`sheave teardown`).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let mut first_err = None;
        for (host, dir) in self.decaps.drain(..) {
            let pins = dir.to_string_lossy();
            if let Err(e) = sheave(
                &host,
                &[
                    "decap",
                    "detach",
                    "--iface",
                    &host.iface,
                    "--pin-dir",
                    &pins,
                ],
            ) {
                first_err.get_or_insert(e);
            }
        }
        if let Some((netns, port, dir)) = self.peer_pass.take() {
            let pins = dir.to_string_lossy().into_owned();
            let args = ["xdp-pass", "detach", "--iface", &port, "--pin-dir", &pins];
            if let Err(e) = sheave_in(&netns, &args) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(sheaved) = self.sheaved.as_mut()
            && sheaved.is_running()
        {
            sheaved.signal(libc::SIGTERM)?;
            match sheaved.wait_timeout(Duration::from_secs(10)) {
                Some(st) if st.success() => {}
                Some(st) => {
                    first_err.get_or_insert(anyhow::anyhow!(
                        "sheaved exited with {st}:\n{}",
                        sheaved.log()
                    ));
                }
                None => {
                    first_err.get_or_insert(anyhow::anyhow!("sheaved ignored SIGTERM"));
                }
            }
        }
        if self.sheaved.take().is_some()
            && let Some(lb) = &self.lb
            && lb_pin_dir(lb).exists()
        {
            let pins = lb_pin_dir(lb).to_string_lossy().into_owned();
            let args = ["teardown", "--iface", &lb.iface, "--pin-dir", &pins];
            if let Err(e) = sheave(lb, &args) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("cleaning up the Sheave deployment: {e:#}");
        }
    }
}

/// Backend `b`'s HTTP server on port 80 (both families), answering with its name.
fn spawn_server(b: &Host) -> Result<Process> {
    b.spawn(
        bin_path("sheave-lab-http")?,
        ["--name", b.name.as_str(), "--listen", "[::]:80"],
    )
}

/// The API socket of the `sheaved` whose files live in `dir` (the lab's directory).
pub fn api_socket(dir: &std::path::Path) -> PathBuf {
    dir.join("sheaved.sock")
}

/// Where [`Deployment::start_with_config`] writes `sheaved`'s configuration file (so a test
/// can change it and `sheave config reload`).
pub fn config_path(lab: &Lab) -> PathBuf {
    lab.dir().join("sheave.toml")
}

/// Start `sheaved` on `host` with its socket and state file in `dir`, and wait for its "ready:"
/// log line (printed once the API listens). Metrics listen on 127.0.0.1:9917 in `host`'s
/// namespace.
pub fn start_sheaved(
    host: &Host,
    config: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Process> {
    start_sheaved_with(host, config, dir, &[])
}

/// [`start_sheaved`] with `extra` arguments (e.g. `--detach-on-exit`).
pub fn start_sheaved_with(
    host: &Host,
    config: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
) -> Result<Process> {
    let (socket, state, pins) = (api_socket(dir), dir.join("state.json"), lb_pin_dir(host));
    let args: [&std::ffi::OsStr; 14] = [
        "--config".as_ref(),
        config.as_os_str(),
        "--iface".as_ref(),
        host.iface.as_ref(),
        "--xdp-mode".as_ref(),
        "native".as_ref(),
        "--socket".as_ref(),
        socket.as_os_str(),
        "--state-file".as_ref(),
        state.as_os_str(),
        "--stats-interval".as_ref(),
        "1".as_ref(),
        "--pin-dir".as_ref(),
        pins.as_os_str(),
    ];
    let extra = extra.iter().map(std::ffi::OsStr::new);
    let mut p = host.spawn(bin_path("sheaved")?, args.into_iter().chain(extra))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if p.log().contains("ready:") {
            return Ok(p);
        }
        if let Some(st) = p.try_status() {
            bail!("sheaved exited ({st}) before it was ready:\n{}", p.log());
        }
        if Instant::now() > deadline {
            bail!("sheaved not ready after {READY_TIMEOUT:?}:\n{}", p.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the lab's pins go; one directory per lab and host (`<prefix>-<host>...`), since labs
/// can run side by side.
fn pin_root() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/sheave-lab")
}

/// Where `sheaved` on `host` pins its data plane (`<prefix>-lb`: one per lab, swept with it).
pub fn lb_pin_dir(host: &Host) -> PathBuf {
    pin_root().join(&host.netns)
}

/// Where a backend's decap pins go.
pub fn decap_pin_dir(lab: &Lab, backend: &Host) -> PathBuf {
    pin_root().join(format!("{}-{}", lab.prefix(), backend.name))
}

/// Remove pins of labs whose namespaces are gone (a run that was killed): their programs died
/// with the interfaces, only the pin files remain.
fn sweep_stale_pins() {
    let Ok(entries) = std::fs::read_dir(pin_root()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((prefix, _)) = name.split_once('-') else {
            continue;
        };
        if !crate::lab::netns_exists(&format!("{prefix}-sw")) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let _ = std::fs::remove_dir(pin_root());
}

/// Run the `sheave` CLI inside network namespace `netns` (for namespaces that are not a Host).
fn sheave_in(netns: &str, args: &[&str]) -> Result<()> {
    let bin = bin_path("sheave")?;
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(&bin)
        .args(args)
        .output()
        .context("running nsenter")?;
    if !out.status.success() {
        bail!(
            "sheave {} in {netns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Run the `sheave` CLI with `args` on `host`.
pub fn sheave(host: &Host, args: &[&str]) -> Result<String> {
    let bin = bin_path("sheave")?;
    host.run(&bin.to_string_lossy(), args)
        .with_context(|| format!("sheave {} on {}", args.join(" "), host.name))
}
