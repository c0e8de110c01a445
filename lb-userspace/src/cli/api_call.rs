//! Run one API call from the (synchronous) CLI and print its answer.
use hyper::Method;
use serde::{Serialize, de::DeserializeOwned};

use super::{Failure, Global};
use crate::api::client::Client;

/// Call the API and decode the answer.
pub fn call<B: Serialize, T: DeserializeOwned>(
    g: &Global,
    method: Method,
    path: &str,
    body: Option<&B>,
) -> Result<T, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    let client = Client::new(g.socket());
    Ok(rt.block_on(client.call(method, path, body))?)
}

/// Call the API; print its answer as JSON with `--json`, else with `text`.
pub fn show<B: Serialize, T: DeserializeOwned + Serialize>(
    g: &Global,
    method: Method,
    path: &str,
    body: Option<&B>,
    text: impl FnOnce(&T),
) -> Result<(), Failure> {
    let v: T = call(g, method, path, body)?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("answers serialize")
        );
    } else {
        text(&v);
    }
    Ok(())
}
