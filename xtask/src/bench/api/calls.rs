//! Driving `sheaved`'s API call by call: each call is made, timed, and its effect checked in the
//! reply, in the next `vip show` and, with bpftool, in the `VIPS` map, so that a figure is never
//! that of a call that did nothing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sheave_tests::deploy::api_socket;
use sheave_tests::lab::{VIP_PORT, VIP4, bin_path};

use crate::bench::http;
use crate::bench::stats::Samples;
use crate::bench::vipmap::VipMap;

/// The toggled backend's weights: the lab's default and half of it.
const WEIGHTS: [u16; 2] = [100, 50];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    /// PATCH the first backend's weight (toggling 100 <-> 50): a new ring.
    SetWeight,
    /// DELETE the last backend: a new ring without it.
    Del,
    /// POST the last backend back: a new ring with it.
    Add,
    /// GET the VIP: the API's own cost, no ring and no map write.
    Show,
}

impl Call {
    pub const ALL: [Call; 4] = [Call::SetWeight, Call::Del, Call::Add, Call::Show];
    /// One client's turn in a round: every change, each followed by a `vip show` that must show
    /// it.
    pub const ROUND: [Call; 6] = [
        Call::SetWeight,
        Call::Show,
        Call::Del,
        Call::Show,
        Call::Add,
        Call::Show,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Call::SetWeight => "set-weight",
            Call::Del => "backend-del",
            Call::Add => "backend-add",
            Call::Show => "vip-show",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Call::SetWeight => "backend set-weight (PATCH)",
            Call::Del => "backend del (DELETE)",
            Call::Add => "backend add (POST)",
            Call::Show => "vip show (GET, no write)",
        }
    }

    fn changes_ring(self) -> bool {
        self != Call::Show
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Client {
    /// A bare HTTP/1.1 request on the socket, from this process.
    Http,
    /// The `sheave` CLI, a process per call, as an operator runs it.
    Cli,
}

impl Client {
    pub const ALL: [Client; 2] = [Client::Http, Client::Cli];

    pub fn name(self) -> &'static str {
        match self {
            Client::Http => "http",
            Client::Cli => "cli",
        }
    }
}

/// What the VIP should look like now, as far as the benchmark changes it.
#[derive(Debug, Clone, Copy)]
struct Expected {
    weight: u16,
    moved_present: bool,
    ring_rebuilds: u64,
    ring_base: Option<u32>,
}

pub struct Driver {
    socket: PathBuf,
    sheave: PathBuf,
    /// The VIP as the CLI writes it, and as the API's paths do.
    vip_arg: String,
    vip_path: String,
    /// The backend whose weight is toggled, and the one removed and added back.
    weighted: Ipv4Addr,
    moved: Ipv4Addr,
    vip_id: u32,
    ring_size: u32,
    map: Option<VipMap>,
    map_checks: usize,
    now: Expected,
    samples: BTreeMap<(Call, Client), Vec<Duration>>,
}

impl Driver {
    /// Reads the VIP's starting point and finds its map in the `sheaved` of process `pid`.
    pub fn connect(
        lab_dir: &Path,
        pid: u32,
        weighted: Ipv4Addr,
        moved: Ipv4Addr,
    ) -> Result<Driver> {
        let vip_path = format!("/v1/vips/tcp/{VIP4}/{VIP_PORT}");
        let socket = api_socket(lab_dir);
        let view = http::request(&socket, "GET", &vip_path, None)?.json()?;
        let map = VipMap::of_process(pid).context("finding sheaved's VIPS map")?;
        let vip_id = field_u64(&view, "id")? as u32;
        let ring_base = match &map {
            Some(m) => Some(m.ring_base(vip_id)?),
            None => None,
        };
        let d = Driver {
            socket,
            sheave: bin_path("sheave")?,
            vip_arg: format!("tcp:{VIP4}:{VIP_PORT}"),
            vip_path,
            weighted,
            moved,
            vip_id,
            ring_size: field_u64(&view, "ring_size")? as u32,
            map,
            map_checks: 0,
            now: Expected {
                weight: WEIGHTS[0],
                moved_present: true,
                ring_rebuilds: field_u64(&view, "ring_rebuilds")?,
                ring_base,
            },
            samples: BTreeMap::new(),
        };
        d.check_view(&view)
            .context("the VIP before the benchmark")?;
        Ok(d)
    }

    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    pub fn map_id(&self) -> Option<u32> {
        self.map.as_ref().map(VipMap::id)
    }

    /// Ring changes whose map update was seen in the map itself.
    pub fn map_checks(&self) -> usize {
        self.map_checks
    }

    pub fn samples(&self, call: Call, client: Client) -> Samples {
        Samples::new(
            self.samples
                .get(&(call, client))
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Makes `call` through `client`, checks its effect, and records its time if `record`.
    pub fn step(&mut self, call: Call, client: Client, record: bool) -> Result<()> {
        let mut next = self.now;
        match call {
            Call::SetWeight => {
                next.weight = if self.now.weight == WEIGHTS[0] {
                    WEIGHTS[1]
                } else {
                    WEIGHTS[0]
                }
            }
            Call::Del => next.moved_present = false,
            Call::Add => next.moved_present = true,
            Call::Show => {}
        }
        if call.changes_ring() {
            next.ring_rebuilds += 1;
        }
        let what = format!("{} through {}", call.name(), client.name());
        let (took, view) = match client {
            Client::Http => self.by_http(call, next.weight),
            Client::Cli => self.by_cli(call, next.weight),
        }
        .with_context(|| what.clone())?;
        self.now = next;
        self.check_view(&view)
            .with_context(|| format!("the answer to {what}"))?;
        if call.changes_ring()
            && let Some(map) = &self.map
        {
            let base = map.ring_base(self.vip_id)?;
            ensure!(
                Some(base) != self.now.ring_base,
                "{what}: the reply came but the VIP still points at ring slot {base} in map {}",
                map.id()
            );
            self.now.ring_base = Some(base);
            self.map_checks += 1;
        }
        if record {
            self.samples.entry((call, client)).or_default().push(took);
        }
        Ok(())
    }

    fn by_http(&self, call: Call, weight: u16) -> Result<(Duration, Value)> {
        let backends = format!("{}/backends", self.vip_path);
        let (method, path, body) = match call {
            Call::SetWeight => (
                "PATCH",
                format!("{backends}/{}", self.weighted),
                Some(json!({ "weight": weight })),
            ),
            Call::Del => ("DELETE", format!("{backends}/{}", self.moved), None),
            Call::Add => ("POST", backends, Some(json!({ "address": self.moved }))),
            Call::Show => ("GET", self.vip_path.clone(), None),
        };
        let body = body.map(|b| b.to_string());
        let t = Instant::now();
        let resp = http::request(&self.socket, method, &path, body.as_deref())?;
        let took = t.elapsed();
        Ok((took, resp.json()?))
    }

    /// Runs the CLI directly, not through `nsenter` into the lb's namespace: the API socket is a
    /// path, reachable from any network namespace, and an operator on the load balancer runs
    /// `sheave` without a wrapper, so nsenter's own exec would only inflate the figure.
    fn by_cli(&self, call: Call, weight: u16) -> Result<(Duration, Value)> {
        let (weighted, moved, w) = (
            self.weighted.to_string(),
            self.moved.to_string(),
            weight.to_string(),
        );
        let args: Vec<&str> = match call {
            Call::SetWeight => vec!["backend", "set-weight", &self.vip_arg, &weighted, &w],
            Call::Del => vec!["backend", "del", &self.vip_arg, &moved],
            Call::Add => vec!["backend", "add", &self.vip_arg, &moved],
            Call::Show => vec!["vip", "show", &self.vip_arg],
        };
        let mut c = Command::new(&self.sheave);
        c.arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(&args)
            .stdin(Stdio::null());
        let t = Instant::now();
        let out = c.output().context("running sheave")?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!(
                "`sheave {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let view = serde_json::from_slice(&out.stdout).context("sheave --json printed no JSON")?;
        Ok((took, view))
    }

    /// The VIP view shows what the benchmark has done so far.
    fn check_view(&self, view: &Value) -> Result<()> {
        let rebuilds = field_u64(view, "ring_rebuilds")?;
        ensure!(
            rebuilds == self.now.ring_rebuilds,
            "ring_rebuilds is {rebuilds}, expected {}",
            self.now.ring_rebuilds
        );
        let backends = view["backends"]
            .as_array()
            .context("no backends in the VIP view")?;
        let find = |addr: Ipv4Addr| {
            let addr = addr.to_string();
            backends.iter().find(|b| b["address"] == addr.as_str())
        };
        let weighted = find(self.weighted).context("the weighted backend is gone")?;
        let weight = field_u64(weighted, "weight")?;
        ensure!(
            weight == u64::from(self.now.weight),
            "backend {} has weight {weight}, expected {}",
            self.weighted,
            self.now.weight
        );
        ensure!(
            find(self.moved).is_some() == self.now.moved_present,
            "backend {} is {}a member, expected the opposite",
            self.moved,
            if self.now.moved_present { "not " } else { "" }
        );
        Ok(())
    }
}

fn field_u64(v: &Value, name: &str) -> Result<u64> {
    v[name]
        .as_u64()
        .with_context(|| format!("no number {name:?} in {v}"))
}
