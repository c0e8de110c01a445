//! A minimal HTTP/1.1 client over a unix socket, for timing `sheaved`'s API without a process
//! start in the way: one connection per request, as the `sheave` CLI does, so the two figures
//! differ by the CLI's start-up (exec, runtime, argument parsing) and little else.
//!
//! Deliberately small: it speaks to one known server. It sends `Connection: close` and reads a
//! `Content-Length`, chunked, or until-close body.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Bound on any one read or write: a wedged daemon fails the benchmark instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON, or an error carrying the status and body when it is not a 2xx answer.
    pub fn json(&self) -> Result<serde_json::Value> {
        if !(200..300).contains(&self.status) {
            bail!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            );
        }
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }
}

/// `method path` with an optional JSON body, on a fresh connection to `socket`.
pub fn request(socket: &Path, method: &str, path: &str, body: Option<&str>) -> Result<Response> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let body = body.unwrap_or("");
    // Head and body in one write, as hyper sends them.
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: sheaved\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    (&stream)
        .write_all(req.as_bytes())
        .context("sending the request")?;
    read_response(BufReader::new(&stream)).with_context(|| format!("{method} {path}"))
}

fn read_response(mut r: impl BufRead) -> Result<Response> {
    let status_line = line(&mut r)?;
    // "HTTP/1.1 200 OK"
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let h = line(&mut r)?;
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            bail!("bad header line {h:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = line(&mut r)?;
            let size = size.split(';').next().unwrap_or("").trim();
            let n = usize::from_str_radix(size, 16)
                .with_context(|| format!("bad chunk size {size:?}"))?;
            if n == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            line(&mut r)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response { status, body })
}

/// One CRLF-terminated line without its terminator; the end of the stream is an error.
fn line(r: &mut impl BufRead) -> Result<String> {
    let mut s = String::new();
    if r.read_line(&mut s)? == 0 {
        bail!("the connection closed mid-answer");
    }
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_chunked_and_close_delimited() {
        let r = read_response(&b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra"[..]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = read_response(
            &b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcd"[..]));
        assert!(r.json().is_err());
        let r = read_response(&b"HTTP/1.1 200 OK\r\n\r\n[1]"[..]).unwrap();
        assert_eq!(r.json().unwrap(), serde_json::json!([1]));
        assert!(read_response(&b"HTTP/1.1 200 OK\r\n"[..]).is_err());
    }
}
