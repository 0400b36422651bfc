//! TLS for `wss://`: the rustls acceptor built from PEM files (`serve --tls-cert
//! --tls-key` or the config file's `[tls]`). The accept loop runs the TLS handshake on the
//! connection's own task, bounded by the login timeout, then serves WebSocket over it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// `[tls]`: PEM files of the certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server side of TLS, cheap to clone.
#[derive(Clone)]
pub struct ServerTls(pub(crate) TlsAcceptor);

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS file {path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS acceptor for the PEM certificate chain and private key of `files`.
pub fn tls_acceptor(files: &TlsFiles) -> Result<ServerTls, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls_pki_types::pem::Error| TlsError::Pem {
            path,
            why: e.to_string(),
        }
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(pem_error(&files.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(&files.cert))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem_error(&files.key))?;
    tls_acceptor_from_der(chain, key).map_err(|e| match e {
        TlsError::NoCertificate(_) => TlsError::NoCertificate(files.cert.clone()),
        other => other,
    })
}

/// A TLS acceptor for a DER certificate chain and key (tests and embedders).
pub fn tls_acceptor_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerTls, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(PathBuf::new()));
    }
    // ring explicitly: one crypto provider in the build, no process-wide default needed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(ServerTls(TlsAcceptor::from(Arc::new(config))))
}
