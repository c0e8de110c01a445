//! TCP check: the backend accepts a connection.
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::{Finding, down, io_detail, up};

/// Connects and closes at once. The close is a reset (zero linger), as other load balancers'
/// checks do: an orderly close would leave a TIME_WAIT socket here for every check, thousands
/// of them with fast intervals and many backends.
pub(super) async fn check(backend: IpAddr, port: u16) -> Finding {
    match TcpStream::connect(SocketAddr::new(backend, port)).await {
        Ok(stream) => {
            // Failing only costs the TIME_WAIT socket this avoids; the check still succeeded.
            let _ = stream.set_zero_linger();
            up()
        }
        Err(e) => down(io_detail(&e)),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::super::{Verdict, run};
    use crate::health::spec::Probe;

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn listening_port_is_up() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let out = run(&Probe::Tcp, ip, port, TIMEOUT).await;
            assert_eq!(out.verdict, Verdict::Up, "{ip}: {out:?}");
            assert_eq!(out.detail, "ok");
            assert!(out.latency < TIMEOUT);
        }
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let out = run(&Probe::Tcp, ip, port, TIMEOUT).await;
        assert_eq!(out.verdict, Verdict::Down);
        assert_eq!(out.detail, "connect refused");
    }
}
