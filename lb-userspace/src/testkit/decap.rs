//! The backends' decap program under test, with a set of VIP addresses to decapsulate for.
use std::net::IpAddr;

use anyhow::Result;
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
    programs::Xdp,
};
use lb_common::decap::DecapKey;

use super::lb::{Ingress, run_program};
use crate::{
    dataplane::objects::DECAP,
    wire::{family, ip_words},
};

pub struct Decap {
    ebpf: Ebpf,
}

impl Decap {
    /// The program loaded, decapsulating packets for `vips`.
    pub fn new(vips: &[IpAddr]) -> Result<Decap> {
        let mut ebpf = Ebpf::load(DECAP)?;
        let prog: &mut Xdp = ebpf.program_mut("sheave_decap").unwrap().try_into()?;
        prog.load()?;
        let mut map: HashMap<&mut MapData, DecapKey, u8> =
            HashMap::try_from(ebpf.map_mut("DECAP_VIPS").unwrap())?;
        for &a in vips {
            let key = DecapKey {
                addr: ip_words(a),
                family: family(a),
                _pad: [0; 3],
            };
            map.insert(key, 1, 0)?;
        }
        Ok(Decap { ebpf })
    }

    /// Run one packet; returns the action and the packet as the program left it.
    pub fn run(&mut self, input: &[u8]) -> Result<(u32, Vec<u8>)> {
        let prog: &mut Xdp = self.ebpf.program_mut("sheave_decap").unwrap().try_into()?;
        run_program(prog, input, Ingress::Lo, 0)
    }
}
