//! The load generators, run in the lab's client: `sheave-lab-client` for connections per second
//! and iperf3 for bulk throughput. Each runs as a lab [`Process`] (its own process group, killed
//! by its guard) and is waited for here, polling for a signal, so that a SIGTERM sent to xtask
//! alone stops a run at once rather than at its deadline.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sheave_tests::lab::{ClientReport, Host, Process, bin_path};

use crate::signals;

/// Connections in flight at once, over all clients of a run.
pub const CONCURRENCY: usize = 32;
/// iperf3: parallel streams and seconds per run.
pub const IPERF_STREAMS: u32 = 4;
pub const IPERF_SECONDS: u32 = 5;
/// Bound on one connection (connect, request, whole response): a lost SYN is retried after 1 s,
/// so 2 s lets one retry through and then counts a failure.
const CONN_TIMEOUT_MS: u64 = 2000;
/// Bound on a whole connections run; the default count takes well under half of it.
const CONN_DEADLINE: Duration = Duration::from_secs(60);
/// Extra time past a program's own bound before its guard kills it.
const GRACE: Duration = Duration::from_secs(15);
/// How often a running load generator is checked on.
const POLL: Duration = Duration::from_millis(50);
/// iperf3 servers run one test at a time and need a moment after one ends.
const BUSY_RETRIES: u32 = 3;

/// One connections run, summed over its clients.
#[derive(Debug, Clone, Default)]
pub struct Conns {
    pub ok: usize,
    pub failed: usize,
    pub not_attempted: usize,
    /// The slowest client's own elapsed time: the run lasts until every connection is done.
    pub elapsed: Duration,
    pub errors: BTreeMap<String, usize>,
    pub by_backend: BTreeMap<String, usize>,
}

impl Conns {
    pub fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// `count` connections from `client`, split evenly over `targets` by as many clients running
/// side by side, [`CONCURRENCY`] in flight in all.
pub fn connections(client: &Host, targets: &[SocketAddr], count: usize) -> Result<Conns> {
    let bin = bin_path("sheave-lab-client")?;
    let n = targets.len();
    let mut procs = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        // The first clients take the remainders.
        let share = |total: usize| total / n + usize::from(i < total % n);
        let args = [
            "--target".to_string(),
            target.to_string(),
            "--count".into(),
            share(count).to_string(),
            "--concurrency".into(),
            share(CONCURRENCY).max(1).to_string(),
            "--timeout-ms".into(),
            CONN_TIMEOUT_MS.to_string(),
            "--deadline-s".into(),
            CONN_DEADLINE.as_secs().to_string(),
        ];
        procs.push(client.spawn(&bin, args)?);
    }
    let mut sum = Conns::default();
    for (status, log) in wait_all(procs, CONN_DEADLINE + GRACE)? {
        if !status.success() {
            bail!("sheave-lab-client failed ({status}):\n{log}");
        }
        let line = log
            .lines()
            .rfind(|l| l.starts_with('{'))
            .with_context(|| format!("sheave-lab-client printed no report:\n{log}"))?;
        let r: ClientReport = serde_json::from_str(line).context("parsing the client's report")?;
        sum.ok += r.ok;
        sum.failed += r.failed;
        sum.not_attempted += r.not_attempted;
        sum.elapsed = sum.elapsed.max(Duration::from_millis(r.elapsed_ms));
        for (k, v) in r.errors {
            *sum.errors.entry(k).or_default() += v;
        }
        for (k, v) in r.by_backend {
            *sum.by_backend.entry(k).or_default() += v;
        }
    }
    Ok(sum)
}

/// One iperf3 run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iperf {
    /// Received by the receiving end over the test (`sum_received`), in Gbit/s.
    pub gbps: f64,
    pub bytes: u64,
    pub retransmits: u64,
}

/// `iperf3 -c TARGET -p PORT -t 5 -P 4 -J`, with `-R` (server sends) if `reverse`.
pub fn iperf(client: &Host, target: IpAddr, port: u16, reverse: bool) -> Result<Iperf> {
    let mut args = vec![
        "-c".to_string(),
        target.to_string(),
        "-p".into(),
        port.to_string(),
        "-t".into(),
        IPERF_SECONDS.to_string(),
        "-P".into(),
        IPERF_STREAMS.to_string(),
        "-J".into(),
        "--connect-timeout".into(),
        "3000".into(),
    ];
    if reverse {
        args.push("-R".into());
    }
    let bound = Duration::from_secs(IPERF_SECONDS.into()) + GRACE;
    let mut attempt = 1;
    loop {
        let p = client.spawn("iperf3", &args)?;
        let (status, log) = wait_all(vec![p], bound)?.remove(0);
        // On failure too, -J puts the reason in the JSON (`error`).
        let report = parse_iperf(&log)?;
        match report["error"].as_str() {
            None if status.success() => return iperf_figures(&report),
            None => bail!("iperf3 to {target}:{port} failed ({status}):\n{log}"),
            Some(e) if e.contains("busy") && attempt < BUSY_RETRIES => {
                attempt += 1;
                thread::sleep(Duration::from_secs(1));
            }
            Some(e) => bail!("iperf3 to {target}:{port}: {e}"),
        }
    }
}

/// iperf3 -J prints one JSON object on stdout; stderr (same log) may hold warnings around it.
fn parse_iperf(log: &str) -> Result<Value> {
    let (Some(start), Some(end)) = (log.find('{'), log.rfind('}')) else {
        bail!("iperf3 printed no JSON:\n{log}");
    };
    serde_json::from_str(&log[start..=end])
        .with_context(|| format!("parsing iperf3's JSON:\n{log}"))
}

fn iperf_figures(report: &Value) -> Result<Iperf> {
    let end = &report["end"];
    let received = &end["sum_received"];
    let bps = received["bits_per_second"]
        .as_f64()
        .context("iperf3 JSON without end.sum_received.bits_per_second")?;
    Ok(Iperf {
        gbps: bps / 1e9,
        bytes: received["bytes"].as_u64().unwrap_or(0),
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    })
}

/// Waits for every process to exit, at most `bound`; returns their exit statuses and logs in
/// order. A signal or the bound is an error, and the guards then kill whatever still runs.
fn wait_all(mut procs: Vec<Process>, bound: Duration) -> Result<Vec<(ExitStatus, String)>> {
    let deadline = Instant::now() + bound;
    loop {
        signals::check()?;
        if procs.iter_mut().all(|p| !p.is_running()) {
            break;
        }
        if Instant::now() >= deadline {
            let late: Vec<String> = procs
                .iter_mut()
                .filter_map(|p| p.is_running().then(|| p.label().to_string()))
                .collect();
            bail!("{} still running after {bound:?}", late.join(", "));
        }
        thread::sleep(POLL);
    }
    Ok(procs
        .iter_mut()
        .map(|p| (p.try_status().expect("exited"), p.log()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iperf_json_among_warnings() {
        let log = "warning: something\n{\"end\":{\"sum_received\":{\"bits_per_second\":2.5e9,\
                   \"bytes\":1000},\"sum_sent\":{\"retransmits\":3}}}\n";
        let f = iperf_figures(&parse_iperf(log).unwrap()).unwrap();
        assert_eq!((f.gbps, f.bytes, f.retransmits), (2.5, 1000, 3));
        assert!(parse_iperf("iperf3: error").is_err());
    }
}
