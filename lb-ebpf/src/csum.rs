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
