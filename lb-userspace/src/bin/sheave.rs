//! sheave: the Sheave command line (see `sheave --help`).
use std::process::ExitCode;

use clap::Parser;
use lb_userspace::cli::{Cli, run};

/// What std's printing macros panic with when stdout cannot be written.
const PRINT_FAILED: &str = "failed printing to stdout";

fn main() -> ExitCode {
    // A closed pipe (`sheave status | head -1`) ends the process quietly, as it does any Unix
    // tool: Rust ignores SIGPIPE by default and would make it a panic instead.
    // SAFETY: restoring a signal's default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Any other failed write to stdout (`> /dev/full`) is an error message and exit status 1,
    // not a panic's backtrace and 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !panic_message(info.payload()).contains(PRINT_FAILED) {
            default_hook(info);
        }
    }));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    match std::panic::catch_unwind(move || run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            eprintln!("sheave: error: {}", f.message);
            ExitCode::from(f.code)
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            match message.split_once(PRINT_FAILED) {
                Some((_, detail)) => {
                    eprintln!("sheave: error: writing the output{detail}");
                    ExitCode::from(1)
                }
                None => std::panic::resume_unwind(payload),
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
