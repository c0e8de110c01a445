//! UDP check: a datagram is answered, optionally with expected content.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::{Finding, contains, down, io_detail, up};
use crate::health::spec::UdpProbe;

/// Largest possible datagram, so a long answer is read whole rather than truncated.
const REPLY_BUFFER: usize = 64 * 1024;

/// A fresh ephemeral socket per check, connected to the backend: the kernel then delivers only
/// the backend's datagrams to it, and an ICMP port unreachable comes back as ECONNREFUSED
/// ("connect refused") instead of being silently lost. Waiting for the answer is bounded by the
/// caller's timeout, which reports "no reply".
pub(super) async fn check(p: &UdpProbe, backend: IpAddr, port: u16) -> Finding {
    let local = match backend {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(e) => return down(format!("cannot bind: {}", io_detail(&e))),
    };
    if let Err(e) = socket.connect(SocketAddr::new(backend, port)).await {
        return down(io_detail(&e));
    }
    if let Err(e) = socket.send(&p.send).await {
        return down(io_detail(&e));
    }
    let mut reply = vec![0u8; REPLY_BUFFER];
    let len = match socket.recv(&mut reply).await {
        Ok(len) => len,
        Err(e) => return down(io_detail(&e)),
    };
    match &p.expect {
        Some(want) if !contains(&reply[..len], want) => down("reply lacks expected bytes"),
        _ => up(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Verdict, run};
    use super::*;
    use crate::health::spec::Probe;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn probe(expect: Option<&[u8]>) -> Probe {
        Probe::Udp(UdpProbe {
            send: b"ping".to_vec(),
            expect: expect.map(<[u8]>::to_vec),
        })
    }

    /// Answers one datagram with "pong " and what it received.
    async fn echo(ip: IpAddr) -> u16 {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (len, from) = socket.recv_from(&mut buf).await.unwrap();
            let mut answer = b"pong ".to_vec();
            answer.extend_from_slice(&buf[..len]);
            socket.send_to(&answer, from).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn answered_datagram_is_up() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let port = echo(ip).await;
            let out = run(&probe(Some(b"pong ping")), ip, port, TIMEOUT).await;
            assert_eq!(
                (out.verdict, out.detail.as_str()),
                (Verdict::Up, "ok"),
                "{ip}"
            );
        }
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = echo(ip).await;
        let out = run(&probe(None), ip, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Up);
    }

    #[tokio::test]
    async fn unexpected_reply_is_down() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = echo(ip).await;
        let out = run(&probe(Some(b"healthy")), ip, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(out.detail, "reply lacks expected bytes");
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let port = {
                let socket = UdpSocket::bind((ip, 0)).await.unwrap();
                socket.local_addr().unwrap().port()
            };
            let out = run(&probe(None), ip, port, TIMEOUT).await;
            assert_eq!(out.verdict, Verdict::Down, "{ip}");
            assert_eq!(out.detail, "connect refused", "{ip}");
        }
    }

    #[tokio::test]
    async fn silence_is_no_reply() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let silent = UdpSocket::bind((ip, 0)).await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let timeout = Duration::from_millis(200);
        let out = run(&probe(None), ip, port, timeout).await;
        assert_eq!(
            (out.verdict, out.detail.as_str()),
            (Verdict::Down, "no reply")
        );
        assert!(out.latency >= timeout && out.latency < Duration::from_millis(500));
        drop(silent);
    }
}
