//! Wire headers, laid out as on the wire. Multi-byte fields hold network-order values.
//!
//! Like the kernel's own XDP samples and Katran, fields are read in place even where the IP header
//! is only 2-byte aligned: BPF's x86-64 and arm64 JITs allow unaligned packet loads, and
//! byte-by-byte reads would cost several instructions per field on the fast path.

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;

/// IP protocol numbers for what we encapsulate: IPv4-in-IP and IPv6-in-IP.
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_FRAGMENT: u8 = 44;

pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const TCP_MIN_HLEN: usize = 20;
pub const UDP_HLEN: usize = 8;

/// IPv4 "more fragments" flag and fragment offset bits of `frag_off` (host order).
pub const IPV4_FRAG_MASK: u16 = 0x3FFF;
/// IPv4 "don't fragment" flag (host order).
pub const IPV4_DF: u16 = 0x4000;

/// TTL / hop limit of the outer header we add.
pub const OUTER_TTL: u8 = 64;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub src: u32,
    pub dst: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    /// Version (4 bits), traffic class (8), flow label (20).
    pub ver_tc_flow: u32,
    pub payload_len: u16,
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: [u32; 4],
    pub dst: [u32; 4],
}

/// The first four bytes of TCP and UDP headers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ports {
    pub sport: u16,
    pub dport: u16,
}
