//! The model's own reading of what a router's or host's kernel refuses (RFC 791 options as
//! Linux's `ip_options_compile` applies them, RFC 8200 extension headers as `ip6_parse_tlv` and
//! the routing header code do, TCP and UDP header lengths), over byte slices, written apart
//! from the program's walks so the two can disagree.

/// What the model makes of a header. The program's walks read fixed-size windows of the frame
/// and give up (to the kernel) when a window runs past the frame or a chain takes more steps
/// than they allow; where that can happen, the kernel's answer is as right as the model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Judgement {
    Fine,
    FineOrKernel,
    Refused,
    RefusedOrKernel,
    /// Certainly handed to the kernel.
    Kernel,
}

impl Judgement {
    fn of(refused: bool, unsure: bool) -> Judgement {
        match (refused, unsure) {
            (false, false) => Judgement::Fine,
            (false, true) => Judgement::FineOrKernel,
            (true, false) => Judgement::Refused,
            (true, true) => Judgement::RefusedOrKernel,
        }
    }

    pub(super) fn refused(self) -> bool {
        matches!(self, Judgement::Refused | Judgement::RefusedOrKernel)
    }

    /// The kernel may get the packet instead.
    pub(super) fn or_kernel(self) -> bool {
        matches!(
            self,
            Judgement::FineOrKernel | Judgement::RefusedOrKernel | Judgement::Kernel
        )
    }
}

/// The IPv4 options area `opts` (what follows the fixed 20 bytes, up to the header length),
/// with `slack` bytes of frame after it.
pub(super) fn ipv4_options(opts: &[u8], slack: usize) -> Judgement {
    // The program reads 4 bytes at each option; near the end that may run past the frame.
    let unsure = slack < 3;
    let mut i = 0;
    let (mut rr, mut ts) = (false, false);
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let left = opts.len() - i;
        if left < 2 {
            return Judgement::of(true, unsure);
        }
        let (kind, len) = (opts[i], opts[i + 1] as usize);
        if len < 2 || len > left {
            return Judgement::of(true, unsure);
        }
        let o = &opts[i..i + len];
        let ptr = o.get(2).copied().unwrap_or(0) as usize;
        let refused = match kind {
            // Source routes: a VIP is no waypoint, well-formed or not.
            131 | 137 => true,
            7 => {
                let bad = rr || len < 3 || ptr < 4 || (ptr <= len && ptr + 3 > len);
                rr = true;
                bad
            }
            68 => {
                let flags = o.get(3).copied().unwrap_or(0);
                let flag = flags & 0x0F;
                let entry = if flag == 0 { 4 } else { 8 };
                let bad = ts
                    || len < 4
                    || ptr < 5
                    || ![0, 1, 3].contains(&flag)
                    || (ptr <= len && ptr + entry - 1 > len)
                    || (ptr > len && flag != 3 && flags >> 4 == 15);
                ts = true;
                bad
            }
            148 => len < 4,
            // CIPSO: the program leaves it to the kernel.
            134 => return Judgement::Kernel,
            _ => false,
        };
        if refused {
            return Judgement::of(true, unsure);
        }
        i += len;
    }
    Judgement::of(false, unsure)
}

/// Where an IPv6 extension chain leads: the transport protocol and its offset in `ip` (the IPv6
/// packet from its fixed header, its payload ending at `end`), and what the model makes of it.
pub(super) fn ipv6_chain(ip: &[u8], end: usize) -> (Judgement, u8, usize) {
    const HBH: u8 = 0;
    const ROUTING: u8 = 43;
    const DSTOPTS: u8 = 60;
    let (mut next, mut off) = (ip[6], 40usize);
    // The program's step budget: a step per header, per option, per end of an options header,
    // and one for the transport header.
    let mut steps = 0;
    let mut headers = 0;
    let mut unsure = false;
    let refused = loop {
        if !matches!(next, HBH | ROUTING | DSTOPTS) {
            break false;
        }
        steps += 1;
        if headers == super::IPV6_MAX_EXT {
            return (Judgement::Kernel, next, off);
        }
        if next == HBH && headers > 0 {
            break true;
        }
        // 4 bytes read at the header: without them the program hands the packet on.
        if off + 4 > ip.len() {
            return (Judgement::Kernel, next, off);
        }
        let len = (ip[off + 1] as usize + 1) * 8;
        if off + len > end {
            break true;
        }
        let kind = next;
        next = ip[off];
        if kind == ROUTING {
            if ip[off + 3] != 0 {
                break true;
            }
        } else {
            let (bad, taken, read_past) =
                options_header(&ip[off + 2..off + len], kind == HBH, ip.len() - (off + 2));
            steps += taken;
            unsure |= read_past;
            if bad {
                break true;
            }
        }
        off += len;
        headers += 1;
    };
    let unsure = unsure || steps + 1 > 64;
    (Judgement::of(refused, unsure), next, off)
}

/// The options of a Hop-by-Hop or Destination Options header (after its first 2 bytes), with
/// `frame_left` bytes of frame from their start: (refused, steps the program takes, whether an
/// 8-byte read may run past the frame).
fn options_header(o: &[u8], hop_by_hop: bool, frame_left: usize) -> (bool, usize, bool) {
    let (mut i, mut pad, mut opts, mut steps) = (0, 0, 0, 0);
    let mut read_past = false;
    while i < o.len() {
        steps += 1;
        read_past |= i + 8 > frame_left;
        if o[i] == 0 {
            pad += 1;
            if pad > 7 {
                return (true, steps, read_past);
            }
            i += 1;
            continue;
        }
        let left = o.len() - i;
        if left < 2 || o[i + 1] as usize + 2 > left {
            return (true, steps, read_past);
        }
        let len = o[i + 1] as usize + 2;
        if o[i] == 1 {
            pad += len;
            let zeros = o[i + 2..i + len].iter().all(|&b| b == 0);
            if len > 7 || pad > 7 || !zeros {
                return (true, steps, read_past);
            }
        } else {
            opts += 1;
            pad = 0;
            let discard_if_unknown = o[i] >> 6 != 0;
            let bad_router_alert = hop_by_hop && o[i] == 5 && len != 4;
            if opts > 8 || discard_if_unknown || bad_router_alert {
                return (true, steps, read_past);
            }
        }
        i += len;
    }
    // The step that sees the header's end.
    (false, steps + 1, read_past)
}

/// A TCP or UDP header: `l4` the segment within the IP length, `frame_left` bytes of frame from
/// its start.
pub(super) fn transport(proto: u8, l4: &[u8], frame_left: usize) -> Judgement {
    // The program reads 8 bytes first: without them it hands the packet to the kernel.
    if frame_left < 8 {
        return Judgement::Kernel;
    }
    let refused = match proto {
        super::IPPROTO_TCP => {
            let doff = l4.get(12).map_or(0, |b| (b >> 4) as usize * 4);
            l4.len() < 20 || doff < 20 || doff > l4.len()
        }
        super::IPPROTO_UDP => {
            let udp_len = l4
                .get(4..6)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
            l4.len() < 8 || udp_len < 8 || udp_len > l4.len()
        }
        _ => false,
    };
    Judgement::of(refused, false)
}
