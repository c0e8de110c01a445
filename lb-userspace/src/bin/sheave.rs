//! sheave: the Sheave command line (see `sheave --help`).
use std::process::ExitCode;

use clap::Parser;
use lb_userspace::cli::{Cli, run};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sheave: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
