//! `sheaved` configurations for the restart and reload scenarios: the lab's two VIPs, the IPv4
//! one health-checked (so a restarted daemon has checks to re-run before its status settles),
//! and the variations a reload applies.

use std::fmt::Write as _;

use crate::deploy::{ENCAP_SOURCE_V4, ENCAP_SOURCE_V6};
use crate::lab::{Lab, VIP_PORT, VIP4, VIP6};

/// A second service on the IPv4 VIP's address, which a reload adds (backends decapsulate by
/// address, so only a server on this port is needed).
pub const EXTRA_PORT: u16 = 8080;

/// What to put in the file.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Backends (1 = b1) of the IPv4 VIP on port 80.
    pub vip4_backends: Vec<usize>,
    /// Also serve tcp VIP4:[`EXTRA_PORT`] from every backend.
    pub extra_vip: bool,
}

impl Shape {
    /// Both VIPs over every backend, nothing else.
    pub fn all(lab: &Lab) -> Shape {
        Shape {
            vip4_backends: (1..=lab.backends().len()).collect(),
            extra_vip: false,
        }
    }
}

/// The configuration text for `shape` in `lab`.
pub fn config(lab: &Lab, shape: &Shape) -> String {
    let mut s = format!(
        "[dataplane]\nencap_source_v4 = \"{ENCAP_SOURCE_V4}\"\n\
         encap_source_v6 = \"{ENCAP_SOURCE_V6}\"\n"
    );
    let _ = write!(
        s,
        "\n[[vip]]\naddress = \"{VIP4}\"\nport = {VIP_PORT}\nprotocol = \"tcp\"\n\
         [vip.health_check]\ntype = \"tcp\"\ntimeout = \"1s\"\n"
    );
    for i in &shape.vip4_backends {
        let _ = write!(
            s,
            "[[vip.backend]]\naddress = \"{}\"\n",
            lab.backends()[i - 1].v4
        );
    }
    let _ = write!(
        s,
        "\n[[vip]]\naddress = \"{VIP6}\"\nport = {VIP_PORT}\nprotocol = \"tcp\"\n"
    );
    for b in lab.backends() {
        let _ = write!(s, "[[vip.backend]]\naddress = \"{}\"\n", b.v6);
    }
    if shape.extra_vip {
        let _ = write!(
            s,
            "\n[[vip]]\naddress = \"{VIP4}\"\nport = {EXTRA_PORT}\nprotocol = \"tcp\"\n"
        );
        for b in lab.backends() {
            let _ = write!(s, "[[vip.backend]]\naddress = \"{}\"\n", b.v4);
        }
    }
    s
}
