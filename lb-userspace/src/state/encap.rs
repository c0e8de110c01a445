//! The data plane's host-wide settings: outer source prefixes whose host bits carry flow entropy.
use lb_common::config::DataplaneConfig;

use crate::wire::{Prefix, ip_words};

/// The data plane's host-wide settings: outer source prefixes whose host bits carry flow entropy.
pub fn dataplane_config(v4: Option<Prefix>, v6: Option<Prefix>) -> DataplaneConfig {
    let mut cfg = DataplaneConfig::default();
    if let Some(p) = v4 {
        cfg.src_v4 = ip_words(p.addr)[0];
        cfg.src_v4_hostmask = low_bits(32 - p.len as u32).to_be();
    }
    if let Some(p) = v6 {
        cfg.src_v6 = ip_words(p.addr);
        // Only the last 32 bits vary: plenty of entropy, and the rest of the prefix stays intact.
        cfg.src_v6_hostmask = low_bits((128 - p.len as u32).min(32)).to_be();
    }
    cfg
}

/// A u32 with its `n` (0..=32) lowest bits set.
fn low_bits(n: u32) -> u32 {
    if n == 0 { 0 } else { u32::MAX >> (32 - n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_masks() {
        let c = dataplane_config(
            Some("198.18.200.0/24".parse().unwrap()),
            Some("2001:db8:200::/120".parse().unwrap()),
        );
        assert_eq!(c.src_v4_hostmask, 0xFFu32.to_be());
        assert_eq!(c.src_v6_hostmask, 0xFFu32.to_be());
        let host = dataplane_config(Some("198.18.0.2".parse().unwrap()), None);
        assert_eq!(host.src_v4_hostmask, 0);
    }
}
