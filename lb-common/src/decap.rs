//! The backend-side decap program's map: which inner destinations it decapsulates for.
use crate::addr::AddrWords;

/// Key of `DECAP_VIPS`: an inner destination address (a VIP served on this backend's loopback).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DecapKey {
    pub addr: AddrWords,
    pub family: u8,
    pub _pad: [u8; 3],
}
assert_layout!(DecapKey, 20, [addr, family, _pad]);
