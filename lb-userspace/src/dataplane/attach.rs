//! Attaching an XDP program to an interface: native (driver) mode, with an explicit fallback to
//! generic mode when the driver has no XDP support.
use std::str::FromStr;

use anyhow::{Context as _, Result, bail};
use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native if the driver supports it, else generic (with a warning).
    Auto,
    /// Driver mode only: fail rather than run slowly.
    Native,
    /// Generic (skb) mode: works everywhere, much slower.
    Generic,
}

impl FromStr for AttachMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "native" | "driver" => Ok(AttachMode::Native),
            "generic" | "skb" => Ok(AttachMode::Generic),
            _ => bail!("unknown XDP mode {s:?}: expected auto, native or generic"),
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        })
    }
}

pub struct Attachment {
    pub iface: String,
    pub link: XdpLinkId,
    pub mode: AttachMode,
}

pub fn attach(prog: &mut Xdp, iface: &str, mode: AttachMode) -> Result<Attachment> {
    let link = match mode {
        AttachMode::Native => prog_attach(prog, iface, XdpMode::Driver).with_context(|| {
            format!("attaching in native mode to {iface} (try --xdp-mode generic)")
        })?,
        AttachMode::Generic => prog_attach(prog, iface, XdpMode::Skb)?,
        AttachMode::Auto => match prog_attach(prog, iface, XdpMode::Driver) {
            Ok(link) => {
                return Ok(Attachment {
                    iface: iface.into(),
                    link,
                    mode: AttachMode::Native,
                });
            }
            Err(e) => {
                log::warn!(
                    "native XDP is not available on {iface} ({e:#}); falling back to generic \
                     mode, which runs after the kernel allocates an skb and is several times slower"
                );
                let link = prog_attach(prog, iface, XdpMode::Skb)?;
                return Ok(Attachment {
                    iface: iface.into(),
                    link,
                    mode: AttachMode::Generic,
                });
            }
        },
    };
    Ok(Attachment {
        iface: iface.into(),
        link,
        mode,
    })
}

fn prog_attach(prog: &mut Xdp, iface: &str, mode: XdpMode) -> Result<XdpLinkId> {
    prog.attach(iface, mode)
        .with_context(|| format!("attaching XDP program to {iface} ({mode:?} mode)"))
}
