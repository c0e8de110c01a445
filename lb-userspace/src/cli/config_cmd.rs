//! `sheave config diff|apply FILE`, `sheave config reload`.
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use hyper::Method;

use super::{Failure, Global, api_call::show};
use crate::api::types::{ConfigRequest, DiffView};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Show what applying FILE would change in the running state.
    Diff { file: PathBuf },
    /// Apply FILE: the running state becomes what it describes (all or nothing). Drained
    /// backends that stay in the file stay drained.
    Apply { file: PathBuf },
    /// Make sheaved re-read its own configuration file (--config) and apply the difference,
    /// all or nothing (SIGHUP does the same).
    Reload,
}

pub fn run(g: &Global, cmd: ConfigCommand) -> Result<(), Failure> {
    let (file, apply) = match cmd {
        ConfigCommand::Diff { file } => (file, false),
        ConfigCommand::Apply { file } => (file, true),
        ConfigCommand::Reload => {
            return show(
                g,
                Method::POST,
                "/v1/config/reload",
                None::<&()>,
                |d: &DiffView| {
                    if d.changes.is_empty() {
                        println!("reloaded: no changes");
                    }
                    for c in &d.changes {
                        println!("{c}");
                    }
                    if d.applied {
                        println!("reloaded: applied {} change(s)", d.changes.len());
                    }
                },
            );
        }
    };
    let toml =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let path = if apply {
        "/v1/config/apply"
    } else {
        "/v1/config/diff"
    };
    show(
        g,
        Method::POST,
        path,
        Some(&ConfigRequest { toml }),
        |d: &DiffView| {
            if d.changes.is_empty() {
                println!("no changes: the running state matches {}", file.display());
            }
            for c in &d.changes {
                println!("{c}");
            }
            if d.applied {
                println!("applied {} change(s)", d.changes.len());
            }
        },
    )
}
