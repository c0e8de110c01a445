//! The `sheave` binary as a user runs it, without a daemon: output written to a closed pipe or
//! a full device ends the command quietly (no panic, no backtrace), the way standard Unix tools
//! do; options a command cannot use are refused.
use std::{
    os::unix::process::ExitStatusExt as _,
    process::{Command, Stdio},
};

const CONFIG: &str = r#"
[[vip]]
address = "198.18.100.1"
port = 80
protocol = "tcp"
ring_size = 1009
backend = [{ address = "198.18.0.21" }, { address = "198.18.0.22" }]
"#;

/// `sheave explain --config FILE ...`: a command that prints without a daemon.
fn explain(dir: &std::path::Path) -> Command {
    let config = dir.join("sheave.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_sheave"));
    c.arg("explain").arg("--config").arg(config).args([
        "tcp",
        "198.18.0.10:40000",
        "->",
        "198.18.100.1:80",
    ]);
    c
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sheave-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = temp_dir("pipe");
    // A pipe whose reading end is closed before the command starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = explain(&dir)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "not quiet: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_full_device_is_an_error_message_not_a_panic() {
    let dir = temp_dir("full");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        panic!("/dev/full is missing: this test needs it");
    };
    let out = explain(&dir).stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sheave: error: writing the output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn local_commands_refuse_the_api_socket() {
    for args in [
        &["decap", "status", "--iface", "eth0"][..],
        &["xdp-pass", "detach", "--iface", "eth0"],
        &["teardown", "--iface", "eth0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sheave"))
            .args(["--socket", "/run/other.sock"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--socket does not apply"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bad_addresses_say_which_part_is_wrong() {
    for (vip, want) in [
        (
            "tcp:198.18.1.300:80",
            "\"198.18.1.300\" is not an IP address",
        ),
        (
            "tcp:198.18.1.3:70000",
            "port \"70000\" is not a port number",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sheave"))
            .args(["vip", "show", vip])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vip}: {stderr}");
        assert!(stderr.contains(want), "{vip}: {stderr}");
    }
}

/// `sheaved --check` refuses what start-up would: more VIP addresses than the VIP map holds,
/// rings that do not fit the ring table.
#[test]
fn sheaved_check_catches_what_start_up_refuses() {
    let dir = temp_dir("check");
    let vips = |n: usize, ring: u32, slots: u32| {
        let mut s = format!("[dataplane]\nring_slots = {slots}\n");
        for i in 0..n {
            s += &format!(
                "\n[[vip]]\naddress = \"198.19.{}.{}\"\nport = 80\nprotocol = \"tcp\"\n\
                 ring_size = {ring}\nbackend = [{{ address = \"198.18.0.21\" }}]\n",
                i / 250,
                i % 250 + 1
            );
        }
        s
    };
    for (name, text, want) in [
        ("addresses", vips(257, 13, 100_000), "VIP map is full"),
        (
            "rings",
            vips(128, 65537, 4_194_368),
            "raise dataplane.ring_slots",
        ),
    ] {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sheaved"))
            .arg("--config")
            .arg(&file)
            .arg("--check")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
    let fine = dir.join("fine.toml");
    std::fs::write(&fine, vips(256, 13, 100_000)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaved"))
        .args(["--check", "--config"])
        .arg(&fine)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}
