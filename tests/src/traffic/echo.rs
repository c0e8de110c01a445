//! Long-lived connections that prove they survive: a client line every 100 ms to the lab
//! server's `/echo`, each answered with the backend's name and the line. Client data goes
//! through the load balancer (answers do not: direct server return), so one packet sent to the
//! wrong backend resets the stream, and one lost packet shows up as a client retransmission
//! and a late or missing echo.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::http::{kind, retransmits};
use crate::lab::Host;

/// Bound on a stream however long a test forgets to stop it (the server gives up on a silent
/// client after 30 s anyway).
const MAX_RUN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct EchoOpts {
    /// A line this often.
    pub interval: Duration,
    /// How long the stream runs from its opening unless stopped earlier: scenarios that measure
    /// when the last stream ended set it; others stop the stream (see [`EchoStream::close`]).
    pub duration: Duration,
    /// Longest wait for an echo, the handshake or the close before the stream counts as broken.
    /// TCP retransmits a lost segment within a second; the rest is room for a busy machine.
    pub reply_timeout: Duration,
}

impl Default for EchoOpts {
    fn default() -> Self {
        EchoOpts {
            interval: Duration::from_millis(100),
            duration: MAX_RUN,
            reply_timeout: Duration::from_secs(5),
        }
    }
}

/// How a stream went.
#[derive(Debug, Clone)]
pub struct EchoOutcome {
    pub target: SocketAddr,
    /// The client's end, to name the flow (e.g. for `sheave explain`).
    pub local: SocketAddr,
    /// The backend that answered the first line; every later echo must name it too.
    pub backend: String,
    /// Lines sent and lines echoed correctly, the opening one included.
    pub sent: u64,
    pub echoed: u64,
    /// What broke it, if anything (a reset or stray data at the close included), and when.
    pub error: Option<String>,
    pub broke_at: Option<Instant>,
    pub opened: Instant,
    /// When the close completed (or the stream broke).
    pub ended: Instant,
    /// The longest wait for an echo: a lost line costs at least a retransmission timeout.
    pub slowest: Duration,
    /// Segments the client retransmitted on this connection.
    pub retransmits: u32,
}

impl EchoOutcome {
    /// Every line echoed by the same backend, and a clean close.
    pub fn intact(&self) -> bool {
        self.error.is_none() && self.sent == self.echoed
    }
}

/// A stream running on a thread of its own.
pub struct EchoStream {
    pub target: SocketAddr,
    pub local: SocketAddr,
    pub backend: String,
    pub opened: Instant,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<EchoOutcome>>,
}

impl EchoStream {
    /// Connects from `client` (the socket lives in its namespace; the thread need not), reads
    /// which backend answers, and starts the line every `opts.interval`.
    pub fn open(client: &Host, target: SocketAddr, opts: EchoOpts) -> Result<EchoStream> {
        let timeout = opts.reply_timeout;
        let (stream, reader, backend) = client
            .in_netns(move || handshake(target, timeout))?
            .with_context(|| format!("opening an echo stream to {target}"))?;
        let local = stream.local_addr()?;
        let opened = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            opts,
            target,
            local,
            stream,
            reader,
            backend: backend.clone(),
            opened,
            stop: stop.clone(),
        };
        Ok(EchoStream {
            target,
            local,
            backend,
            opened,
            stop,
            handle: Some(thread::spawn(move || run.run())),
        })
    }

    /// Opens streams until one is answered by one of `want` (closing the others cleanly), at
    /// most `attempts` times.
    pub fn open_to(
        client: &Host,
        target: SocketAddr,
        opts: EchoOpts,
        want: &[&str],
        attempts: usize,
    ) -> Result<EchoStream> {
        let mut seen = Vec::new();
        for _ in 0..attempts {
            let s = EchoStream::open(client, target, opts)?;
            if want.contains(&s.backend.as_str()) {
                return Ok(s);
            }
            seen.push(s.backend.clone());
            let o = s.close();
            if let Some(e) = o.error {
                bail!("closing an unwanted echo stream to {}: {e}", o.backend);
            }
        }
        bail!("no echo stream reached {want:?} in {attempts} attempts: {seen:?}")
    }

    /// Ends the stream cleanly at its next line.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the stream to end (its duration, or [`EchoStream::stop`]).
    pub fn finish(mut self) -> EchoOutcome {
        self.join()
    }

    /// Stops the stream and waits for its close.
    pub fn close(self) -> EchoOutcome {
        self.stop();
        self.finish()
    }

    fn join(&mut self) -> EchoOutcome {
        let h = self.handle.take().expect("joined once");
        h.join().unwrap_or_else(|_| EchoOutcome {
            target: self.target,
            local: self.local,
            backend: self.backend.clone(),
            sent: 0,
            echoed: 0,
            error: Some("the echo thread panicked".into()),
            broke_at: Some(Instant::now()),
            opened: self.opened,
            ended: Instant::now(),
            slowest: Duration::ZERO,
            retransmits: 0,
        })
    }
}

impl Drop for EchoStream {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.stop();
            self.join();
        }
    }
}

/// Connect, request `/echo`, read the head, send line 0 and read its echo: the backend's name.
fn handshake(
    target: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, BufReader<TcpStream>, String)> {
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| anyhow!(kind("connect", &e)))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let req = format!("GET /echo HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        bail!("/echo answered {line:?}");
    }
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("/echo closed in the response head");
        }
        if line.trim_end().is_empty() {
            break;
        }
    }
    s.write_all(b"0\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    let Some(backend) = line.trim_end().strip_suffix(" 0") else {
        bail!("the echo of line 0 is {line:?}");
    };
    Ok((s, reader, backend.to_string()))
}

/// The stream's thread.
struct Run {
    opts: EchoOpts,
    target: SocketAddr,
    local: SocketAddr,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    backend: String,
    opened: Instant,
    stop: Arc<AtomicBool>,
}

impl Run {
    fn run(mut self) -> EchoOutcome {
        let (mut sent, mut echoed, mut slowest) = (1, 1, Duration::ZERO);
        let mut error = self.lines(&mut sent, &mut echoed, &mut slowest).err();
        let broke_at = error.is_some().then(Instant::now);
        let retransmits = retransmits(&self.stream);
        if error.is_none() {
            error = self.close().err();
        }
        let ended = Instant::now();
        EchoOutcome {
            target: self.target,
            local: self.local,
            backend: self.backend,
            sent,
            echoed,
            broke_at: broke_at.or_else(|| error.is_some().then_some(ended)),
            error,
            opened: self.opened,
            ended,
            slowest,
            retransmits,
        }
    }

    /// Sends line `seq` every interval until the duration is over or stopped.
    fn lines(
        &mut self,
        sent: &mut u64,
        echoed: &mut u64,
        slowest: &mut Duration,
    ) -> Result<(), String> {
        let end = self.opened + self.opts.duration;
        let mut due = self.opened;
        let mut line = String::new();
        for seq in 1u64.. {
            due += self.opts.interval;
            while Instant::now() < due && !self.stop.load(Ordering::Relaxed) {
                thread::sleep((due - Instant::now()).min(Duration::from_millis(20)));
            }
            if self.stop.load(Ordering::Relaxed) || due >= end {
                break;
            }
            *sent += 1;
            let t = Instant::now();
            self.stream
                .write_all(format!("{seq}\n").as_bytes())
                .map_err(|e| format!("line {seq}: {}", kind("write", &e)))?;
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("line {seq}: closed by the server")),
                Ok(_) => {}
                Err(e) => return Err(format!("line {seq}: {}", kind("read", &e))),
            }
            *slowest = (*slowest).max(t.elapsed());
            if line.trim_end() != format!("{} {seq}", self.backend) {
                return Err(format!(
                    "line {seq}: echo {line:?} on a stream of {}",
                    self.backend
                ));
            }
            *echoed += 1;
            // A stall (retransmissions) must not turn into a burst of catching-up lines.
            due = due.max(Instant::now());
        }
        Ok(())
    }

    /// Half-close, then expect the server's close and nothing else.
    fn close(&mut self) -> Result<(), String> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| kind("shutdown", &e))?;
        let _ = self.stream.set_read_timeout(Some(self.opts.reply_timeout));
        let mut rest = String::new();
        match self.reader.read_line(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => Err(format!("stray data at the close: {rest:?}")),
            Err(e) => Err(format!("at the close: {}", kind("read", &e))),
        }
    }
}
