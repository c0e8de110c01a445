//! XDP programs that outlive the command that attached them: the link (and any maps the caller
//! wants to keep reaching) are pinned in one bpffs directory; removing the link pin detaches.
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    programs::{Xdp, links::FdLink, links::PinnedLink},
};

use super::{AttachMode, attach};
use crate::netinfo;

/// The link's pin inside a program's directory.
pub const LINK_PIN: &str = "link";

/// Load `prog` from `object`, attach it to `iface`, let `pin_maps` fill and pin maps into `dir`,
/// then pin the link. On any error nothing stays attached and no pin is left.
pub fn attach(
    object: &[u8],
    prog: &str,
    iface: &str,
    mode: AttachMode,
    dir: &Path,
    pin_maps: impl FnOnce(&mut Ebpf, &Path) -> Result<()>,
) -> Result<AttachMode> {
    netinfo::ensure_bpffs(dir)?;
    if dir.join(LINK_PIN).exists() {
        bail!(
            "a program is already attached to {iface} (pinned at {}); detach it first",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ebpf = Ebpf::load(object).with_context(|| format!("loading {prog}'s maps"))?;
    program(&mut ebpf, prog)?
        .load()
        .with_context(|| format!("the kernel refused {prog}"))?;
    let attachment = attach::attach(program(&mut ebpf, prog)?, iface, mode)?;
    let used = attachment.mode;
    let result = (|| -> Result<()> {
        pin_maps(&mut ebpf, dir)?;
        let link = program(&mut ebpf, prog)?.take_link(attachment.link)?;
        let link: FdLink = link.try_into().map_err(|_| {
            anyhow!(
                "this kernel attached XDP through netlink; pinning needs bpf links (Linux 5.9+)"
            )
        })?;
        link.pin(dir.join(LINK_PIN))
            .context("pinning the XDP link")?;
        Ok(())
    })();
    if let Err(e) = result {
        // The link dies with this process; remove whatever was pinned already.
        let _ = remove_dir_pins(dir);
        return Err(e);
    }
    Ok(used)
}

/// Detach the program pinned in `dir` and remove the directory's pins.
pub fn detach(dir: &Path) -> Result<()> {
    let link_pin = dir.join(LINK_PIN);
    if !link_pin.exists() {
        bail!("no program is pinned at {}", dir.display());
    }
    let link = PinnedLink::from_pin(&link_pin)
        .with_context(|| format!("opening {}", link_pin.display()))?;
    // Unpinning leaves us the only holder of the link; dropping it detaches the program.
    drop(link.unpin().context("unpinning the XDP link")?);
    remove_dir_pins(dir)
}

/// Remove every pin in `dir`, then `dir` and its parents below /sys/fs/bpf while they are empty.
pub fn remove_dir_pins(dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let root = Path::new("/sys/fs/bpf");
    let mut d = Some(dir);
    while let Some(cur) = d.filter(|p| p.starts_with(root) && *p != root) {
        if std::fs::remove_dir(cur).is_err() {
            break;
        }
        d = cur.parent();
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from its object"))?
        .try_into()
        .map_err(|e| anyhow!("{name} is not an XDP program: {e}"))
}
