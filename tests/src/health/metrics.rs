//! `sheaved`'s `/metrics`, fetched inside the lb's namespace and parsed just enough to look up
//! a series by name and labels.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::deploy::METRICS_ADDR;
use crate::lab::Host;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One sample line: `name{k="v",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample `sheaved` on `lb` exposes now.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Scrapes `sheaved` on `lb`.
    pub fn scrape(lb: &Host) -> Result<Metrics> {
        let text = lb.in_netns(fetch)?.context("scraping sheaved's /metrics")?;
        Ok(Metrics {
            samples: parse(&text),
        })
    }

    /// Samples of `name` whose labels include every one of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The sum over [`Metrics::matching`] samples (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample of `name` exists at all (a metric that is missing altogether is a
    /// different failure from a counter that did not move).
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn fetch() -> Result<String> {
    let addr: SocketAddr = METRICS_ADDR.parse()?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let Some((head, body)) = out.split_once("\r\n\r\n") else {
        bail!("no HTTP response from {addr}: {out:?}");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("{addr} answered {head:?}");
    }
    Ok(body.to_string())
}

/// Parses the Prometheus text format's sample lines (comments and malformed lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start_matches([',', ' ']);
            if let Some(after) = r.strip_prefix('}') {
                break after;
            }
            let (key, after) = r.split_once("=\"")?;
            let (value, after) = unescape_until_quote(after)?;
            labels.insert(key.trim().to_string(), value);
            r = after;
        }
    } else {
        rest
    };
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A label value up to its closing quote (with `\\`, `\"` and `\n` escapes), and the rest.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples() {
        let text = "# HELP x y\n# TYPE x counter\n\
            sheave_backend_transitions_total{vip=\"tcp 198.18.100.1:80\",backend=\"198.18.0.21\",\
            from=\"up\",to=\"down\"} 2\n\
            sheave_build_info{version=\"0.1\"} 1\n\
            plain 3.5 1700000000\n\
            odd{a=\"q\\\"uote\\\\\"} +Inf\n\
            garbage\n";
        let m = Metrics {
            samples: parse(text),
        };
        assert_eq!(m.samples.len(), 4, "{m:?}");
        let t = "sheave_backend_transitions_total";
        assert_eq!(m.sum(t, &[("backend", "198.18.0.21"), ("to", "down")]), 2.0);
        assert_eq!(m.sum(t, &[("vip", "tcp 198.18.100.1:80")]), 2.0);
        assert_eq!(m.sum(t, &[("to", "up")]), 0.0);
        assert_eq!(m.sum("plain", &[]), 3.5);
        assert_eq!(m.samples[3].labels["a"], "q\"uote\\");
        assert!(m.has("sheave_build_info") && !m.has("missing"));
    }
}
