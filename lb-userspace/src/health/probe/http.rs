//! HTTP(S) check: one HTTP/1.1 `GET` on a fresh connection, judged by status and optionally
//! body. hyper's client connection API does the protocol, so a backend's malformed answer is a
//! parse error, never a misread.
use std::error::Error as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Finding, Verdict, contains, down, io_detail, tls, up};
use crate::health::spec::HttpProbe;

/// How much of the body `expect_body` looks at: enough for any status page, bounded so a
/// backend streaming an endless body costs little.
const BODY_LIMIT: usize = 64 * 1024;

const AGENT: &str = concat!("sheave-health/", env!("CARGO_PKG_VERSION"));

pub(super) async fn check(p: &HttpProbe, backend: IpAddr, port: u16) -> Finding {
    let tcp = match TcpStream::connect(SocketAddr::new(backend, port)).await {
        Ok(tcp) => tcp,
        Err(e) => return down(io_detail(&e)),
    };
    let host = host_header(p, backend, port);
    match &p.tls {
        None => exchange(tcp, p, &host).await,
        Some(opts) => match tls::connect(tcp, opts, p.host.as_deref(), backend).await {
            Ok(stream) => exchange(stream, p, &host).await,
            Err(detail) => down(detail),
        },
    }
}

/// The configured `Host`, else the backend's address (IPv6 in brackets) with the port unless
/// it is the scheme's default.
fn host_header(p: &HttpProbe, backend: IpAddr, port: u16) -> String {
    if let Some(host) = &p.host {
        return host.clone();
    }
    let addr = match backend {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let default_port = if p.tls.is_some() { 443 } else { 80 };
    if port == default_port {
        addr
    } else {
        format!("{addr}:{port}")
    }
}

/// Sends the request over an established stream and judges the response.
async fn exchange<S>(stream: S, p: &HttpProbe, host: &str) -> Finding
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = Request::get(p.path.as_str())
        .header(HOST, host)
        .header(USER_AGENT, AGENT)
        // One request per connection: nothing to keep open between checks.
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let Ok(request) = request else {
        return down("invalid request (path or host)");
    };
    let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return down(hyper_detail(&e)),
    };
    // The connection is driven here, beside the request, rather than spawned: when the caller's
    // timeout drops this future, the socket goes with it and nothing outlives the check.
    let mut conn = pin!(conn);
    let mut answer = pin!(async move {
        let response = sender.send_request(request).await?;
        judge(response, p).await
    });
    let result = tokio::select! {
        biased;
        r = &mut answer => r,
        r = &mut conn => match r {
            // The connection ended cleanly: the answer is complete or has failed; either way
            // it resolves without the connection.
            Ok(()) => answer.await,
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| down(hyper_detail(&e)))
}

/// Going-away statuses are looked at first, since one may also lie in the expected range
/// (e.g. 503 with `expect_status` 200-599); then the range, then the body.
async fn judge(response: Response<Incoming>, p: &HttpProbe) -> Result<Finding, hyper::Error> {
    let status = response.status().as_u16();
    if p.drain_on_status.contains(&status) {
        return Ok((Verdict::GoingAway, format!("HTTP {status}")));
    }
    let (lo, hi) = p.expect_status;
    if !(lo..=hi).contains(&status) {
        return Ok(down(format!("HTTP {status} not in {lo}-{hi}")));
    }
    let Some(want) = &p.expect_body else {
        return Ok(up());
    };
    if body_contains(response.into_body(), want.as_bytes()).await? {
        Ok(up())
    } else {
        Ok(down(format!("body lacks {want:?}")))
    }
}

/// Whether the first [`BODY_LIMIT`] bytes of the body contain `want`; stops reading as soon as
/// they do.
async fn body_contains(mut body: Incoming, want: &[u8]) -> Result<bool, hyper::Error> {
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < BODY_LIMIT {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        // Only the new bytes, plus enough before them to hold a match that straddles.
        let from = seen.len().saturating_sub(want.len().saturating_sub(1));
        let take = data.len().min(BODY_LIMIT - seen.len());
        seen.extend_from_slice(&data[..take]);
        if contains(&seen[from..], want) {
            return Ok(true);
        }
    }
    Ok(contains(&seen, want))
}

/// A hyper error as stable text: the socket error under it if there is one ("connection
/// reset"), else what went wrong at the HTTP level.
fn hyper_detail(e: &hyper::Error) -> String {
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return io_detail(io);
        }
        source = inner.source();
    }
    if e.is_parse() || e.is_parse_status() {
        "invalid HTTP response".to_string()
    } else if e.is_incomplete_message() {
        "connection closed before the response ended".to_string()
    } else if e.is_timeout() {
        "timeout".to_string()
    } else {
        format!("HTTP error: {e}")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::super::{Outcome, run};
    use super::*;
    use crate::health::spec::{Probe, TlsOptions};

    const TIMEOUT: Duration = Duration::from_secs(2);
    const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn probe() -> HttpProbe {
        HttpProbe {
            tls: None,
            path: "/healthz".into(),
            host: None,
            expect_status: (200, 399),
            expect_body: None,
            drain_on_status: vec![],
        }
    }

    fn reply(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Reads the request head, answers `reply` and closes; returns the request head.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reply: Vec<u8>) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(&reply).await;
        let _ = stream.shutdown().await;
        String::from_utf8_lossy(&got).into_owned()
    }

    /// A one-connection HTTP server on `ip`; the handle yields the request it received.
    async fn server(ip: IpAddr, reply: Vec<u8>) -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(stream, reply).await
        });
        (port, task)
    }

    /// The same over TLS with a self-signed certificate; "" if the handshake failed.
    async fn tls_server(reply: Vec<u8>) -> (u16, JoinHandle<String>) {
        let acceptor = tls::test_acceptor();
        let listener = TcpListener::bind((V4, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            match acceptor.accept(stream).await {
                Ok(tls) => serve(tls, reply).await,
                Err(_) => String::new(),
            }
        });
        (port, task)
    }

    async fn check_against(p: HttpProbe, reply: Vec<u8>) -> Outcome {
        let (port, _server) = server(V4, reply).await;
        run(&Probe::Http(p), V4, port, TIMEOUT).await
    }

    #[tokio::test]
    async fn ok_status_is_up_and_request_is_well_formed() {
        let (port, server) = server(V4, reply("200 OK", "fine")).await;
        let out = run(&Probe::Http(probe()), V4, port, TIMEOUT).await;
        assert_eq!((out.verdict, out.detail.as_str()), (Verdict::Up, "ok"));
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /healthz http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        let agent = format!(
            "\r\nuser-agent: sheave-health/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(request.contains(&agent), "{request}");
        assert!(request.contains("\r\nconnection: close\r\n"), "{request}");
    }

    #[tokio::test]
    async fn ipv6_host_header_is_bracketed() {
        let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let (port, server) = server(ip, reply("204 No Content", "")).await;
        let out = run(&Probe::Http(probe()), ip, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Up, "{out:?}");
        let request = server.await.unwrap();
        assert!(
            request.contains(&format!("\r\nhost: [::1]:{port}\r\n")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn configured_host_header_is_sent() {
        let p = HttpProbe {
            host: Some("svc.example".into()),
            ..probe()
        };
        let (port, server) = server(V4, reply("200 OK", "")).await;
        let out = run(&Probe::Http(p), V4, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Up, "{out:?}");
        assert!(server.await.unwrap().contains("\r\nhost: svc.example\r\n"));
    }

    #[test]
    fn default_ports_are_left_out_of_host() {
        let ip6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(host_header(&probe(), V4, 80), "127.0.0.1");
        assert_eq!(host_header(&probe(), V4, 443), "127.0.0.1:443");
        assert_eq!(host_header(&probe(), ip6, 8080), "[2001:db8::1]:8080");
        let https = HttpProbe {
            tls: Some(TlsOptions {
                verify: false,
                server_name: None,
            }),
            ..probe()
        };
        assert_eq!(host_header(&https, ip6, 443), "[2001:db8::1]");
        assert_eq!(host_header(&https, V4, 80), "127.0.0.1:80");
    }

    #[tokio::test]
    async fn unexpected_status_is_down() {
        let out = check_against(probe(), reply("500 Internal Server Error", "")).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(out.detail, "HTTP 500 not in 200-399");
    }

    #[tokio::test]
    async fn draining_status_is_going_away_only_when_configured() {
        let draining = HttpProbe {
            drain_on_status: vec![503],
            ..probe()
        };
        let out = check_against(draining, reply("503 Service Unavailable", "")).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::GoingAway, "HTTP 503")
        );

        let out = check_against(probe(), reply("503 Service Unavailable", "")).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(out.detail, "HTTP 503 not in 200-399");

        // Going away wins over the expected range.
        let wide = HttpProbe {
            expect_status: (200, 599),
            drain_on_status: vec![503],
            ..probe()
        };
        let out = check_against(wide, reply("503 Service Unavailable", "")).await;
        assert_eq!(out.verdict, Verdict::GoingAway);
    }

    #[tokio::test]
    async fn body_must_contain_expected_text() {
        let wants_ok = HttpProbe {
            expect_body: Some("ok".into()),
            ..probe()
        };
        let out = check_against(wants_ok.clone(), reply("200 OK", "status: ok\n")).await;
        assert_eq!((out.verdict, out.detail.as_str()), (Verdict::Up, "ok"));

        let out = check_against(wants_ok.clone(), reply("200 OK", "status: bad\n")).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(out.detail, "body lacks \"ok\"");

        // Only the first 64 KiB count.
        let late = format!("{}ok", "x".repeat(BODY_LIMIT));
        let out = check_against(wants_ok.clone(), reply("200 OK", &late)).await;
        assert_eq!(out.detail, "body lacks \"ok\"");

        // A match found early ends the read of a long body.
        let early = format!("ok{}", "x".repeat(4 * 1024 * 1024));
        let out = check_against(wants_ok, reply("200 OK", &early)).await;
        assert_eq!(out.verdict, Verdict::Up, "{out:?}");
    }

    #[tokio::test]
    async fn garbage_and_silence_are_down() {
        let out = check_against(probe(), b"garbage\r\n\r\n".to_vec()).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "invalid HTTP response")
        );

        let out = check_against(probe(), Vec::new()).await;
        assert_eq!(out.verdict, Verdict::Down, "{out:?}");

        let out = check_against(probe(), vec![0xff; 100_000]).await;
        assert_eq!(out.verdict, Verdict::Down, "{out:?}");
    }

    #[tokio::test]
    async fn unanswered_request_times_out() {
        let listener = TcpListener::bind((V4, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (_held, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let timeout = Duration::from_millis(200);
        let start = std::time::Instant::now();
        let out = run(&Probe::Http(probe()), V4, port, timeout).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "timeout")
        );
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(out.latency >= timeout);
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let port = {
            let listener = TcpListener::bind((V4, 0)).await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let out = run(&Probe::Http(probe()), V4, port, TIMEOUT).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "connect refused")
        );
    }

    fn https(verify: bool) -> HttpProbe {
        HttpProbe {
            tls: Some(TlsOptions {
                verify,
                server_name: None,
            }),
            expect_body: Some("secure".into()),
            ..probe()
        }
    }

    #[tokio::test]
    async fn https_without_verification_accepts_self_signed() {
        let (port, server) = tls_server(reply("200 OK", "secure ok")).await;
        let out = run(&Probe::Http(https(false)), V4, port, TIMEOUT).await;
        assert_eq!((out.verdict, out.detail.as_str()), (Verdict::Up, "ok"));
        let request = server.await.unwrap();
        assert!(
            request.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn https_with_verification_rejects_self_signed() {
        let (port, _server) = tls_server(reply("200 OK", "secure ok")).await;
        let out = run(&Probe::Http(https(true)), V4, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert!(out.detail.starts_with("TLS handshake failed"), "{out:?}");
    }

    #[tokio::test]
    async fn https_to_a_plain_server_fails_the_handshake() {
        // A plain HTTP server answers a ClientHello with 400 and closes.
        let listener = TcpListener::bind((V4, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.read(&mut [0u8; 4096]).await;
            let _ = stream.write_all(&reply("400 Bad Request", "")).await;
        });
        let out = run(&Probe::Http(https(false)), V4, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert!(out.detail.starts_with("TLS handshake failed"), "{out:?}");
    }
}
