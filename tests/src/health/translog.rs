//! The backend transitions `sheaved` logs, e.g.
//! `backend 198.18.0.21 of tcp 198.18.100.1:80: up -> down (connect refused ×3)`, picked out of
//! its log whatever the logger's prefix.

/// One logged transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub backend: String,
    /// As in status JSON: `tcp 198.18.100.1:80`.
    pub vip: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Every transition line in `log`, in order.
pub fn parse(log: &str) -> Vec<Transition> {
    log.lines().filter_map(parse_line).collect()
}

/// Transitions of `backend` of `vip`.
pub fn of(log: &str, vip: &str, backend: &str) -> Vec<Transition> {
    parse(log)
        .into_iter()
        .filter(|t| t.vip == vip && t.backend == backend)
        .collect()
}

fn parse_line(line: &str) -> Option<Transition> {
    let start = line.find("backend ")?;
    let rest = &line[start + "backend ".len()..];
    let (backend, rest) = rest.split_once(" of ")?;
    // VIP names contain ':' but never ": " (`tcp [2001:db8:100::1]:80`).
    let (vip, rest) = rest.split_once(": ")?;
    let (from, rest) = rest.split_once(" -> ")?;
    let (to, reason) = match rest.split_once(" (") {
        Some((to, r)) => (to, r.strip_suffix(')').unwrap_or(r)),
        None => (rest, ""),
    };
    if backend.contains(' ') || from.contains(' ') || to.trim().contains(' ') {
        return None;
    }
    Some(Transition {
        backend: backend.to_string(),
        vip: vip.to_string(),
        from: from.to_string(),
        to: to.trim().to_string(),
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transitions() {
        let log = "[2026-01-01T00:00:00Z INFO  lb_userspace::health] backend 198.18.0.21 of \
                   tcp 198.18.100.1:80: up -> down (connect refused ×3)\n\
                   [..] something else\n\
                   backend 2001:db8::21 of tcp [2001:db8:100::1]:80: draining -> removed (no \
                   flows left after 12.3s)\n";
        let t = parse(log);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].backend, "198.18.0.21");
        assert_eq!(t[0].vip, "tcp 198.18.100.1:80");
        assert_eq!((t[0].from.as_str(), t[0].to.as_str()), ("up", "down"));
        assert_eq!(t[0].reason, "connect refused ×3");
        assert_eq!(t[1].vip, "tcp [2001:db8:100::1]:80");
        assert_eq!(t[1].to, "removed");
        assert_eq!(t[1].reason, "no flows left after 12.3s");
        assert_eq!(of(log, "tcp 198.18.100.1:80", "198.18.0.21").len(), 1);
    }
}
