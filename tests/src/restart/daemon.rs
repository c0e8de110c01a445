//! The load balancer seen from its own host: the `sheave` CLI against the lab's `sheaved`, the
//! XDP program attached to the lb's interface, the pins in bpffs, and what `sheaved` logs about
//! adopting a pinned data plane.

use std::path::PathBuf;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::deploy::{api_socket, lb_pin_dir};
use crate::lab::{Host, Lab, bin_path};

/// Bound on one `sheave` call.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The lb host, its `sheaved`'s API socket and pin directory.
pub struct Control {
    pub lb: Host,
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
}

impl Control {
    pub fn new(lab: &Lab) -> Control {
        Control {
            lb: lab.lb().clone(),
            socket: api_socket(lab.dir()),
            pin_dir: lb_pin_dir(lab.lb()),
        }
    }

    /// Runs `sheave --socket S ARGS` on the lb (without `--socket` for the commands that work
    /// on the host rather than through sheaved); whatever it exits with.
    pub fn sheave(&self, args: &[&str]) -> Result<Output> {
        let mut c = self.lb.command(bin_path("sheave")?);
        let local = matches!(args.first(), Some(&("teardown" | "decap" | "xdp-pass")));
        if !local {
            c.arg("--socket").arg(&self.socket);
        }
        c.args(args);
        let what = format!("sheave {}", args.join(" "));
        let child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        wait_output(child, CLI_TIMEOUT).with_context(|| what)
    }

    /// `sheave ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.sheave(args)?;
        if !out.status.success() {
            bail!(
                "sheave {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `sheave --json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all)?;
        serde_json::from_str(&out).with_context(|| format!("parsing {out:?}"))
    }

    /// `sheave status --json` without what changes by itself (see [`comparable_status`]).
    pub fn status(&self) -> Result<Value> {
        self.json(&["status"]).map(comparable_status)
    }

    /// Waits until the API answers `sheave status`; how long that took.
    pub fn wait_api(&self, timeout: Duration) -> Result<Duration> {
        let t = Instant::now();
        loop {
            match self.sheave(&["status"]) {
                Ok(o) if o.status.success() => return Ok(t.elapsed()),
                other if t.elapsed() > timeout => {
                    bail!("sheaved's API does not answer after {timeout:?}: {other:?}")
                }
                _ => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Waits until every backend of every VIP is `up` (a checked backend is `down` until its
    /// first check passes, so the checks have all answered); the status.
    pub fn wait_all_up(&self, timeout: Duration) -> Result<Value> {
        let t = Instant::now();
        loop {
            let s = self.status()?;
            if all_up(&s) {
                return Ok(s);
            }
            if t.elapsed() > timeout {
                bail!("backends not all up after {timeout:?}: {s:#}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the status equals `want` (health checks re-run after a restart settle in
    /// a second or so); how long it took, or the last status that differed.
    pub fn wait_status(&self, want: &Value, timeout: Duration) -> Result<Duration, Value> {
        let t = Instant::now();
        loop {
            let s = self
                .status()
                .unwrap_or_else(|e| Value::String(format!("{e:#}")));
            if &s == want {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                return Err(s);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Packets counted per VIP (`sheave stats`), which live in pinned maps and so must keep
    /// counting across restarts.
    pub fn vip_packets(&self) -> Result<Vec<(String, u64)>> {
        let v = self.json(&["stats"])?;
        let vips = v["vips"].as_object().context("stats without vips")?;
        Ok(vips
            .iter()
            .map(|(k, t)| (k.clone(), t["packets"].as_u64().unwrap_or(0)))
            .collect())
    }

    /// The id of the XDP program attached to the lb's interface, if any.
    pub fn xdp_prog_id(&self) -> Result<Option<u32>> {
        let out = self
            .lb
            .run("ip", &["-d", "link", "show", "dev", &self.lb.iface])?;
        Ok(xdp_prog_id(&out))
    }

    /// Whether the pin directory exists.
    pub fn pins_exist(&self) -> bool {
        self.pin_dir.exists()
    }

    /// `sheave teardown --iface IF --pin-dir DIR` on the lb; whatever it exits with.
    pub fn teardown(&self) -> Result<Output> {
        let pins = self.pin_dir.to_string_lossy().into_owned();
        self.sheave(&["teardown", "--iface", &self.lb.iface, "--pin-dir", &pins])
    }
}

/// Waits for `child` at most `timeout` (killing it then), reading its output meanwhile so a
/// chatty child never blocks on a full pipe.
fn wait_output(mut child: std::process::Child, timeout: Duration) -> Result<Output> {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // A read error only truncates the output; the exit status tells what happened.
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `sheave status --json` minus what may differ between two daemons serving the same state:
/// uptime, ring rebuild counts (per daemon), the latest single check (its latency, and its
/// result: one slow probe of a loaded machine times out without changing any verdict), and the
/// run length in a reason (`ok ×2` → `ok`, `first check: ok` → `ok`): how many checks the last
/// transition took is history (a backend whose server started after `sheaved` went down and up
/// first), not state.
pub fn comparable_status(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("uptime_seconds");
    }
    for vip in v["vips"].as_array_mut().into_iter().flatten() {
        if let Some(o) = vip.as_object_mut() {
            o.remove("ring_rebuilds");
        }
        for b in vip["backends"].as_array_mut().into_iter().flatten() {
            if let Some(c) = b["check"].as_object_mut() {
                c.remove("latency_ms");
                c.remove("last");
            }
            if let Some(r) = b["reason"].as_str() {
                let r = r.strip_prefix("first check: ").unwrap_or(r);
                let detail = r.rsplit_once(" ×").map_or(r, |(d, _)| d).to_string();
                b["reason"] = Value::String(detail);
            }
        }
    }
    v
}

/// The differences between two JSON values, one `path: a -> b` line each (for messages).
pub fn json_diff(a: &Value, b: &Value) -> String {
    let mut out = Vec::new();
    diff_into(a, b, String::new(), &mut out);
    out.join("\n")
}

fn diff_into(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (u, v) = (&x.get(k), &y.get(k));
                let (u, v) = (u.unwrap_or(&Value::Null), v.unwrap_or(&Value::Null));
                diff_into(u, v, format!("{path}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_into(u, v, format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

/// Every backend of every VIP is `up`.
pub fn all_up(status: &Value) -> bool {
    status["vips"].as_array().is_some_and(|vips| {
        vips.iter().all(|v| {
            v["backends"]
                .as_array()
                .is_some_and(|bs| bs.iter().all(|b| b["state"] == "up"))
        })
    })
}

/// The program id in `ip -d link show` output (`prog/xdp id N`, or `prog/xdpgeneric id N`).
pub fn xdp_prog_id(ip_link: &str) -> Option<u32> {
    let at = ip_link.find("prog/xdp")?;
    let rest = &ip_link[at..];
    let id = rest.split_once(" id ")?.1;
    id.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// What a starting `sheaved` logged about the data plane it found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileLog {
    /// `adopted the data plane pinned at DIR (layout vN): F flows kept` → (N, F).
    pub adopted: Option<(u32, u64)>,
    /// `reconciled in T ms` → T.
    pub reconciled_ms: Option<f64>,
}

impl ReconcileLog {
    pub fn parse(log: &str) -> ReconcileLog {
        let mut r = ReconcileLog::default();
        for line in log.lines() {
            if let Some(rest) = after(line, "adopted the data plane pinned at ") {
                let layout = after(rest, "(layout v")
                    .and_then(|s| s.split(')').next())
                    .and_then(|s| s.parse().ok());
                let flows = after(rest, "): ")
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse().ok());
                if let (Some(l), Some(f)) = (layout, flows) {
                    r.adopted = Some((l, f));
                }
            }
            if let Some(rest) = after(line, "reconciled in ") {
                r.reconciled_ms = rest
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.trim_end_matches("ms").parse().ok());
            }
        }
        r
    }
}

/// The text after the first `pat` in `s`.
fn after<'a>(s: &'a str, pat: &str) -> Option<&'a str> {
    s.find(pat).map(|i| &s[i + pat.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prog_ids() {
        let native = "3: eth-lb@if4: <UP> mtu 1600 xdp qdisc noqueue\n    link/ether aa brd ff\n    \
                      prog/xdp id 417 name sheave_lb tag 0123 jited";
        assert_eq!(xdp_prog_id(native), Some(417));
        assert_eq!(xdp_prog_id("    prog/xdpgeneric id 9 name x"), Some(9));
        assert_eq!(xdp_prog_id("3: eth-lb: <UP> mtu 1600"), None);
    }

    #[test]
    fn reconcile_lines() {
        let log = "[2025 INFO] adopted the data plane pinned at /sys/fs/bpf/x (layout v3): 12 \
                   flows kept\n[2025 INFO] reconciled in 37 ms\n";
        let r = ReconcileLog::parse(log);
        assert_eq!(r.adopted, Some((3, 12)));
        assert_eq!(r.reconciled_ms, Some(37.0));
        assert_eq!(
            ReconcileLog::parse("reconciled in 4.5 ms").reconciled_ms,
            Some(4.5)
        );
        assert_eq!(
            ReconcileLog::parse("ready: API on x"),
            ReconcileLog::default()
        );
    }

    #[test]
    fn comparable() {
        let v: Value = serde_json::json!({
            "interface": "eth-lb", "uptime_seconds": 5,
            "vips": [{"name": "v", "ring_rebuilds": 2, "backends": [
                {"address": "198.18.0.21", "check": {"kind": "tcp", "latency_ms": 0.3,
                 "last": "timeout"}, "reason": "ok ×2"},
                {"address": "198.18.0.22", "check": null, "reason": "weight 0"},
                {"address": "198.18.0.23", "check": {"kind": "tcp", "latency_ms": 0.3,
                 "last": "ok"}, "reason": "first check: ok"}]}]
        });
        let want = serde_json::json!({
            "interface": "eth-lb",
            "vips": [{"name": "v", "backends": [
                {"address": "198.18.0.21", "check": {"kind": "tcp"}, "reason": "ok"},
                {"address": "198.18.0.22", "check": null, "reason": "weight 0"},
                {"address": "198.18.0.23", "check": {"kind": "tcp"}, "reason": "ok"}]}]
        });
        assert_eq!(comparable_status(v), want);
        let other = serde_json::json!({"a": [1, {"b": "x"}], "c": 2});
        let changed = serde_json::json!({"a": [1, {"b": "y"}], "d": 2});
        assert_eq!(
            json_diff(&other, &changed),
            ".a[1].b: \"x\" -> \"y\"\n.c: 2 -> null\n.d: null -> 2"
        );
    }
}
