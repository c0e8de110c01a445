//! The demo's tables: per VIP, how many connections each backend served.

use std::fmt::Write as _;

use sheave_tests::lab::ClientReport;

/// One VIP's results. Every lab backend gets a row, even one that served nothing: a backend
/// missing from the spread is what this table is for.
pub fn table(r: &ClientReport, backends: &[String]) -> String {
    let mut names: Vec<&str> = backends.iter().map(String::as_str).collect();
    // Names the lab does not know (the server answers with its --name) are shown too.
    names.extend(
        r.by_backend
            .keys()
            .map(String::as_str)
            .filter(|n| !backends.iter().any(|b| b == n)),
    );
    let total = r.requested.max(1) as f64;
    let pct = |n: usize| 100.0 * n as f64 / total;
    let elapsed = if r.elapsed_ms < 1000 {
        format!("{} ms", r.elapsed_ms)
    } else {
        format!("{:.1} s", r.elapsed_ms as f64 / 1000.0)
    };
    let mut s = format!(
        "\nVIP {}: {} connections, {} answered, {} failed ({elapsed})\n",
        r.target,
        r.requested,
        r.ok,
        r.failed + r.not_attempted,
    );
    let _ = writeln!(s, "  {:<10} {:>7} {:>7}", "backend", "served", "share");
    for name in names {
        let n = r.count(name);
        let _ = writeln!(s, "  {name:<10} {n:>7} {:>6.1}%", pct(n));
    }
    if r.failed > 0 {
        let kinds: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            s,
            "  {:<10} {:>7} {:>6.1}%  ({})",
            "failed",
            r.failed,
            pct(r.failed),
            kinds.join(", ")
        );
    }
    if r.not_attempted > 0 {
        let _ = writeln!(
            s,
            "  {:<10} {:>7} {:>6.1}%  (the client's deadline passed first)",
            "not tried",
            r.not_attempted,
            pct(r.not_attempted)
        );
    }
    s
}

pub fn all_ok(reports: &[ClientReport]) -> bool {
    reports.iter().all(ClientReport::all_ok)
}

/// The closing line.
pub fn verdict(reports: &[ClientReport]) -> String {
    let requested: usize = reports.iter().map(|r| r.requested).sum();
    let ok: usize = reports.iter().map(|r| r.ok).sum();
    if all_ok(reports) {
        format!("demo: OK, all {requested} connections answered")
    } else {
        format!(
            "demo: FAILED, {} of {requested} connections not answered",
            requested - ok
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(by: &[(&str, usize)], failed: usize) -> ClientReport {
        let ok: usize = by.iter().map(|(_, n)| n).sum();
        ClientReport {
            target: "198.18.100.1:80".into(),
            requested: ok + failed,
            attempted: ok + failed,
            ok,
            failed,
            by_backend: by.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            errors: if failed > 0 {
                [("connect_timeout".to_string(), failed)].into()
            } else {
                Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn table_lists_idle_and_unknown_backends() {
        let names = ["b1".to_string(), "b2".to_string()];
        let t = table(&report(&[("b1", 3), ("x9", 1)], 0), &names);
        assert!(t.contains("b1               3   75.0%"), "{t}");
        assert!(t.contains("b2               0    0.0%"), "{t}");
        assert!(t.contains("x9               1   25.0%"), "{t}");
        assert!(!t.contains("\n  failed"), "{t}");
    }

    #[test]
    fn failures_show_and_fail_the_verdict() {
        let reports = [report(&[("b1", 3)], 1), report(&[("b1", 4)], 0)];
        let t = table(&reports[0], &["b1".into()]);
        assert!(t.contains("(connect_timeout 1)"), "{t}");
        assert!(!all_ok(&reports));
        assert_eq!(
            verdict(&reports),
            "demo: FAILED, 1 of 8 connections not answered"
        );
        assert_eq!(
            verdict(&reports[1..]),
            "demo: OK, all 4 connections answered"
        );
    }
}
