//! The CLI's side of the API: one HTTP/1.1 request per call over the daemon's unix socket.
use std::path::PathBuf;

use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::UnixStream;

/// Why a call failed; the CLI turns each into its own exit code.
#[derive(Debug)]
pub enum ClientError {
    /// The daemon is not reachable on the socket.
    Unreachable(String),
    /// The daemon answered with an error status.
    Api { status: u16, message: String },
    /// Anything else (a malformed answer...).
    Other(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(m) | ClientError::Other(m) => f.write_str(m),
            ClientError::Api { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client { socket }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            ClientError::Unreachable(format!(
                "cannot reach sheaved at {}: {e} (is it running? see --socket)",
                self.socket.display()
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Unreachable(format!("connecting to sheaved: {e}")))?;
        tokio::spawn(conn);
        let payload = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Other(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "sheaved")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Unreachable(format!("sheaved did not answer: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Other(format!("reading the answer: {e}")))?
            .to_bytes();
        if status >= 400 {
            let message = serde_json::from_slice::<super::types::ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api { status, message });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Other(format!("unexpected answer from sheaved: {e}")))
    }
}
