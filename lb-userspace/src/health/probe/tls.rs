//! TLS for HTTPS checks: rustls with the ring provider (aws-lc-rs would need cmake to build).
//!
//! The client configuration is built once per verification mode and shared by every check:
//! building one means loading the system's roots, far too costly to repeat every few hundred
//! milliseconds per backend.
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::io_detail;
use crate::health::spec::TlsOptions;

/// Runs the TLS handshake over a connected socket. `host` is the probe's `Host` header, if set.
/// The error is the check's detail: "TLS handshake failed: " and why.
pub(super) async fn connect(
    tcp: TcpStream,
    opts: &TlsOptions,
    host: Option<&str>,
    backend: IpAddr,
) -> Result<TlsStream<TcpStream>, String> {
    let config = client_config(opts.verify)?;
    let name = server_name(opts, host, backend);
    let name = ServerName::try_from(name.clone())
        .map_err(|_| format!("invalid TLS server name {name:?}"))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let why = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => tls.to_string(),
                None => io_detail(&e),
            };
            format!("TLS handshake failed: {why}")
        })
}

/// SNI and verification name: the configured server name, else the `Host` header without its
/// port, else the backend's address (for which rustls sends no SNI and checks an IP SAN).
fn server_name(opts: &TlsOptions, host: Option<&str>, backend: IpAddr) -> String {
    if let Some(name) = &opts.server_name {
        return name.clone();
    }
    match host {
        Some(host) => strip_port(host).to_string(),
        None => backend.to_string(),
    }
}

/// `example.com:8443` → `example.com`, `[2001:db8::1]:443` → `2001:db8::1`; anything else as is.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(inner, _)| inner);
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

type Shared = Result<Arc<ClientConfig>, String>;

fn client_config(verify: bool) -> Shared {
    static VERIFYING: OnceLock<Shared> = OnceLock::new();
    static TRUSTING: OnceLock<Shared> = OnceLock::new();
    if verify {
        VERIFYING.get_or_init(|| build(true)).clone()
    } else {
        TRUSTING.get_or_init(|| build(false)).clone()
    }
}

fn build(verify: bool) -> Shared {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut config = if verify {
        builder
            .with_root_certificates(system_roots())
            .with_no_client_auth()
    } else {
        let verifier = AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    // The check speaks HTTP/1.1; a server that would pick h2 by default must not.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's trusted roots. Unreadable ones are skipped: one bad file must not fail every
/// verified check; with none at all, every verified check fails, so that is logged once.
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        log::warn!(
            "no system CA certificates found ({} errors); HTTPS health checks with verify = true \
             will fail",
            found.errors.len()
        );
    }
    roots
}

/// For `verify = false`: any certificate is accepted, since backends are usually reached by
/// address and their certificates name something else; the check is about liveness, not
/// identity. The handshake signatures are still checked with the provider's algorithms, so the
/// server must at least hold the key of the certificate it presents and speak TLS correctly.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS server on loopback for the HTTPS tests, with a fresh self-signed certificate.
#[cfg(test)]
pub(super) fn test_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let provider: Arc<rustls::crypto::CryptoProvider> =
        Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_are_stripped() {
        assert_eq!(strip_port("example.com:8443"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_port("[broken"), "[broken");
        assert_eq!(strip_port("odd:"), "odd:");
    }

    #[test]
    fn name_prefers_server_name_then_host_then_address() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let named = TlsOptions {
            verify: true,
            server_name: Some("api.example".into()),
        };
        assert_eq!(server_name(&named, Some("h:1"), ip), "api.example");
        let unnamed = TlsOptions {
            verify: true,
            server_name: None,
        };
        assert_eq!(server_name(&unnamed, Some("h:1"), ip), "h");
        assert_eq!(server_name(&unnamed, None, ip), "192.0.2.7");
    }

    #[test]
    fn both_configs_build_once() {
        for verify in [false, true] {
            let a = client_config(verify).unwrap();
            let b = client_config(verify).unwrap();
            assert!(Arc::ptr_eq(&a, &b));
        }
    }
}
