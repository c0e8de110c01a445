//! Addresses as the packet path stores them: four 32-bit words holding the raw network-order bytes.
//! An IPv4 address uses word 0 and leaves the rest zero, so one key type covers both families.

/// Address family tag stored beside addresses (values chosen to read well in a hex dump).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Raw network-order address words; see the module docs.
pub type AddrWords = [u32; 4];

/// Words for an IPv4 address given as its four octets.
pub const fn v4_words(octets: [u8; 4]) -> AddrWords {
    [u32::from_ne_bytes(octets), 0, 0, 0]
}

/// Words for an IPv6 address given as its sixteen octets.
pub const fn v6_words(o: [u8; 16]) -> AddrWords {
    [
        u32::from_ne_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_ne_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_ne_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_ne_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// The sixteen octets behind address words (IPv4: the first four are the address).
pub const fn words_octets(w: &AddrWords) -> [u8; 16] {
    let a = w[0].to_ne_bytes();
    let b = w[1].to_ne_bytes();
    let c = w[2].to_ne_bytes();
    let d = w[3].to_ne_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2],
        d[3],
    ]
}
