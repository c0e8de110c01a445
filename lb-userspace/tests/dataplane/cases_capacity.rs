//! The daemon's accounting of map capacity matches the kernel's maps: a state the daemon accepts
//! at the limit (256 VIPs on 256 addresses: 512 entries of the VIP map) is written whole into
//! the real maps, with no E2BIG on the last entry. (What is refused beyond it is the replay
//! tests' business: `control::replay::capacity`.)
use std::fmt::Write as _;

use lb_userspace::testkit::Lb;
use libtest_mimic::Trial;

use crate::trial;

pub fn trials(fx0: u32) -> Vec<Trial> {
    vec![trial(
        "capacity/a-full-vip-map-is-written-whole",
        move || {
            let mut cfg = String::from("[dataplane]\nflow_table_size = 4096\n");
            for i in 0..256 {
                let _ = write!(
                    cfg,
                    "\n[[vip]]\naddress = \"198.19.{}.{}\"\nport = 80\nprotocol = \"tcp\"\n\
                 ring_size = 13\nbackend = [{{ address = \"198.18.1.11\" }}]\n",
                    i / 250,
                    i % 250 + 1
                );
            }
            Lb::with_config(fx0, &cfg)?;
            Ok(())
        },
    )]
}
