//! The load balancer under test: the real program loaded with a fixture configuration through
//! the daemon's own state and reconcile code, run with BPF_PROG_TEST_RUN; and the checks of what
//! it did with a packet.
use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use crate::maps::MapStore as _;
use anyhow::{Context as _, Result, bail, ensure};
use aya::programs::{TestRun, TestRunOptions};
use lb_common::{
    addr::AddrWords,
    config::{DataplaneConfig, outer_src_v4, outer_src_v6},
    stats::Stat,
};

use crate::{
    config::{Config, Protocol},
    dataplane::{Dataplane, LoadOptions},
    reconcile,
    simulate::{Pick, Simulator},
    state::{State, dataplane_config},
    wire::{flow_key, words_ip},
};

use super::netns::{LB_MAC, backend_mac};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// An XDP action's name, for messages.
pub fn action_name(a: u32) -> Cow<'static, str> {
    match a {
        XDP_ABORTED => "XDP_ABORTED".into(),
        XDP_DROP => "XDP_DROP".into(),
        XDP_PASS => "XDP_PASS".into(),
        XDP_TX => "XDP_TX".into(),
        XDP_REDIRECT => "XDP_REDIRECT".into(),
        _ => format!("action {a}").into(),
    }
}

/// Which interface test_run pretends the packet arrived on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Loopback (test_run's default): backends are behind another interface → XDP_REDIRECT.
    Lo,
    /// fx0, the backends' interface: one-armed LB → XDP_TX.
    Fx0,
}

pub struct Lb {
    pub dp: Dataplane,
    pub state: State,
    pub encap: DataplaneConfig,
    fx0: u32,
    /// Built from `state` on first use; building rings per query would dominate the tests.
    sim: Option<Simulator>,
}

impl Lb {
    /// The production program with the configuration `text` (TOML, as sheaved reads it).
    pub fn with_config(fx0: u32, text: &str) -> Result<Lb> {
        Lb::load(fx0, &Config::parse(text)?, Dataplane::load)
    }

    /// The program from `load` (e.g. [`Dataplane::load_bench`]) with the configuration `cfg`.
    pub fn load(fx0: u32, cfg: &Config, load: fn(LoadOptions) -> Result<Dataplane>) -> Result<Lb> {
        // A ring table just big enough: the tests load the program many times.
        let mut state = State::from_config(cfg, State::slots_needed(cfg) as u32)?;
        let mut dp = load(LoadOptions {
            flow_table_size: state.options.flow_table_size,
            ring_slots: state.ring_capacity,
        })?;
        let encap = dataplane_config(cfg.dataplane.encap_source_v4, cfg.dataplane.encap_source_v6);
        reconcile::apply(&mut dp, &mut state, &encap)?;
        Ok(Lb {
            dp,
            state,
            encap,
            fx0,
            sim: None,
        })
    }

    /// Run one packet; returns the action and the packet as the program left it.
    pub fn run(&mut self, input: &[u8], ingress: Ingress) -> Result<(u32, Vec<u8>)> {
        let fx0 = self.fx0;
        run_program(self.dp.program()?, input, ingress, fx0)
    }

    /// The ring's choice for a new flow, by the userspace simulator.
    pub fn simulate(&mut self, proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Result<Pick> {
        let state = &self.state;
        self.sim
            .get_or_insert_with(|| Simulator::new(state))
            .pick(&flow_key(proto, src, dst)?)
            .context("the simulator found no backend")
    }

    /// Write the state's pending changes to the maps, as the daemon does after an API call.
    pub fn sync(&mut self) -> Result<()> {
        reconcile::sync(&mut self.dp, &mut self.state, &self.encap)?;
        self.sim = None;
        Ok(())
    }

    /// Open a TCP flow: its SYN is forwarded to the ring's pick, which is returned.
    pub fn open_flow(&mut self, c: SocketAddr, vip: SocketAddr, ingress: Ingress) -> Result<Pick> {
        let first = self.simulate(Protocol::Tcp, c, vip)?;
        let syn = super::packets::tcp(c, vip, super::packets::Tcp::Syn, b"");
        expect_forward_to(self, &syn, ingress, first.backend, first.hash)?;
        Ok(first)
    }

    /// A TCP packet of the flow `c` → `vip` with `flags` and no payload is forwarded to the
    /// ring's pick ([`expect_forward`]), which is returned.
    pub fn forward_tcp(
        &mut self,
        c: SocketAddr,
        vip: SocketAddr,
        flags: super::packets::Tcp,
        ingress: Ingress,
    ) -> Result<IpAddr> {
        let p = super::packets::tcp(c, vip, flags, b"");
        expect_forward(self, Protocol::Tcp, c, vip, &p, ingress)
    }

    /// Take `backend` out of `vip`'s ring (weight 0) and sync: new flows avoid it, established
    /// ones keep it.
    pub fn weight_zero(&mut self, vip: SocketAddr, backend: IpAddr) -> Result<()> {
        let key = self
            .state
            .vips
            .iter()
            .find(|v| v.spec.address == vip.ip() && v.spec.port == vip.port())
            .context("no such VIP in the fixture config")?
            .key;
        self.state.update_member(&key, backend, Some(0), None)?;
        self.sync()
    }

    pub fn backend_id(&self, addr: IpAddr) -> u32 {
        self.state
            .backends()
            .find(|(_, a)| *a == addr)
            .expect("a configured backend")
            .0
    }

    pub fn outer_src(&self, backend: IpAddr, hash: u32) -> IpAddr {
        let words: AddrWords = match backend {
            IpAddr::V4(_) => [outer_src_v4(&self.encap, hash), 0, 0, 0],
            IpAddr::V6(_) => outer_src_v6(&self.encap, hash),
        };
        words_ip(&words, if backend.is_ipv4() { 4 } else { 6 })
    }

    pub fn stat(&self, s: Stat) -> u64 {
        self.dp.global_stats().unwrap()[s as usize]
    }
}

pub fn run_program(
    prog: &mut aya::programs::Xdp,
    input: &[u8],
    ingress: Ingress,
    fx0: u32,
) -> Result<(u32, Vec<u8>)> {
    let mut out = vec![0u8; input.len() + 256];
    let ctx = xdp_md(input.len(), fx0);
    let opts = TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        ctx_in: (ingress == Ingress::Fx0).then_some(&ctx[..]),
        ..TestRunOptions::default()
    };
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}

/// The context test_run gives an XDP program for a packet of `len` bytes that arrived on
/// interface `ingress_ifindex`: a `struct xdp_md` (data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex).
pub fn xdp_md(len: usize, ingress_ifindex: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    ctx
}

/// The MAC of a fixture backend with a neighbour entry (x.x.x.11-13 / ::11-13).
pub fn mac_of(backend: IpAddr) -> [u8; 6] {
    let last = match backend {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    backend_mac(last)
}

/// Assert that `input` is forwarded, encapsulated, to the backend the simulator picks.
pub fn expect_forward(
    lb: &mut Lb,
    proto: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
    input: &[u8],
    ingress: Ingress,
) -> Result<IpAddr> {
    let pick = lb.simulate(proto, src, dst)?;
    expect_forward_to(lb, input, ingress, pick.backend, pick.hash)?;
    Ok(pick.backend)
}

/// Assert that `input` is forwarded, encapsulated, to `backend` with outer fields from `hash`.
pub fn expect_forward_to(
    lb: &mut Lb,
    input: &[u8],
    ingress: Ingress,
    backend: IpAddr,
    hash: u32,
) -> Result<()> {
    let (action, out) = lb.run(input, ingress)?;
    let want_action = if ingress == Ingress::Fx0 {
        XDP_TX
    } else {
        XDP_REDIRECT
    };
    let want = super::packets::encapsulated(
        input,
        LB_MAC,
        mac_of(backend),
        lb.outer_src(backend, hash),
        backend,
        hash,
    );
    ensure!(
        action == want_action,
        "action {action}, expected {want_action} (output {})",
        hex(&out)
    );
    same_bytes(&out, &want)
}

/// Assert the program leaves `input` alone and passes it to the kernel.
pub fn expect_pass_unchanged(lb: &mut Lb, input: &[u8]) -> Result<()> {
    let (action, out) = lb.run(input, Ingress::Lo)?;
    ensure!(action == XDP_PASS, "action {action}, expected XDP_PASS");
    same_bytes(&out, input)
}

pub fn same_bytes(got: &[u8], want: &[u8]) -> Result<()> {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        bail!(
            "output differs at byte {at} (got {} bytes, want {})\n got: {}\nwant: {}",
            got.len(),
            want.len(),
            hex(got),
            hex(want)
        );
    }
    Ok(())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
