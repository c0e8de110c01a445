//! Bulk transfers through the lab: an upload through the load balancer (`GET /sink` on the lab
//! server, which reads the bytes and answers their count and checksum) and a download straight
//! from a backend (`GET /bytes`, direct server return), each checked byte for byte.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

use crate::lab::Host;

/// Bound on a whole transfer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Byte `i` of a transfer: position-dependent, so that a lost, duplicated or reordered segment
/// changes the checksum.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

/// FNV-1a 64 over a stream of bytes.
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// The checksum of the first `n` bytes of [`pattern`].
pub fn pattern_hash(n: u64) -> u64 {
    let mut h = Fnv::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < n {
        let k = buf.len().min((n - at) as usize);
        fill(&mut buf[..k], at);
        h.update(&buf[..k]);
        at += k as u64;
    }
    h.0
}

fn fill(buf: &mut [u8], from: u64) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = pattern(from + j as u64);
    }
}

/// Uploads `n` bytes of [`pattern`] from `client` to `vip` (`/sink`); the backend that took
/// them, after checking its count and checksum.
pub fn upload(client: &Host, vip: SocketAddr, n: u64) -> Result<String> {
    client.in_netns(|| -> Result<String> {
        let mut s = connect(vip)?;
        write!(s, "GET /sink?bytes={n} HTTP/1.1\r\nHost: lab\r\n\r\n")?;
        read_head(&mut s)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0;
        while at < n {
            let k = buf.len().min((n - at) as usize);
            fill(&mut buf[..k], at);
            s.write_all(&buf[..k])
                .with_context(|| format!("sending at byte {at} of {n}"))?;
            at += k as u64;
        }
        let mut line = String::new();
        s.read_to_string(&mut line)
            .context("reading the sink's answer")?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, count, hash] = parts[..] else {
            bail!("the sink answered {line:?}");
        };
        ensure!(
            count == n.to_string(),
            "the sink counted {count} of {n} bytes"
        );
        let want = format!("{:016x}", pattern_hash(n));
        ensure!(hash == want, "the sink's checksum {hash}, sent {want}");
        Ok(name.to_string())
    })?
}

/// Downloads `n` bytes from `vip` (`/bytes`) to `client`, checking every one.
pub fn download(client: &Host, vip: SocketAddr, n: u64) -> Result<()> {
    client.in_netns(|| -> Result<()> {
        let mut s = connect(vip)?;
        write!(s, "GET /bytes?n={n} HTTP/1.1\r\nHost: lab\r\n\r\n")?;
        read_head(&mut s)?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut at, mut want) = (0u64, vec![0u8; 64 * 1024]);
        loop {
            let k = s
                .read(&mut buf)
                .with_context(|| format!("reading at byte {at}"))?;
            if k == 0 {
                break;
            }
            ensure!(at + k as u64 <= n, "more than {n} bytes");
            fill(&mut want[..k], at);
            if let Some(i) = (0..k).find(|&i| buf[i] != want[i]) {
                bail!("byte {} differs", at + i as u64);
            }
            at += k as u64;
        }
        ensure!(at == n, "got {at} of {n} bytes");
        Ok(())
    })?
}

fn connect(vip: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&vip, Duration::from_secs(5))
        .with_context(|| format!("connecting to {vip}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Reads up to the end of the response head (byte by byte: what follows is the body).
fn read_head(s: &mut TcpStream) -> Result<()> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 8192, "response head too long");
        let k = s.read(&mut b).context("reading the response head")?;
        ensure!(k == 1, "closed before the response head ended");
        head.push(b[0]);
    }
    ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "answered {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}
