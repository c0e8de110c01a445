//! Internet checksums.
use crate::headers::Ipv4Hdr;

/// Fold a 32-bit one's-complement sum to 16 bits and complement it.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    !(sum as u16)
}

/// Header checksum of an IPv4 header without options whose `check` field is zero. The header
/// lives on the stack (we build it there), so reading it as ten 16-bit words is aligned.
#[inline(always)]
pub fn ipv4_header(hdr: &Ipv4Hdr) -> u16 {
    // SAFETY: Ipv4Hdr is 20 bytes, 4-byte aligned and repr(C): ten u16 words.
    let words = unsafe { &*(hdr as *const Ipv4Hdr as *const [u16; 10]) };
    let mut sum = 0u32;
    let mut i = 0;
    while i < 10 {
        sum += words[i] as u32;
        i += 1;
    }
    fold(sum)
}

/// One's-complement sum of `bytes` (an even number of them, as big-endian 16-bit words) added
/// to `sum`, not folded. Sizes are constants at every call site, so the loop unrolls.
#[inline(always)]
pub fn sum_bytes(bytes: &[u8], mut sum: u32) -> u32 {
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}
