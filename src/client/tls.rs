//! `wss://` for the client: rustls with the Mozilla roots (webpki-roots) plus any extra
//! root certificates of [`ClientConfig`](super::ClientConfig) (a self-signed server, a
//! private CA). The WebSocket's connect step and the HTTP transfers of files use this.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio_tungstenite::Connector;

/// The TLS connector for `wss://` URLs: `None` means tokio-tungstenite's default
/// (webpki roots), which is what a config without extra roots gets.
pub(crate) fn connector(extra_roots: &[Vec<u8>]) -> Result<Option<Connector>, String> {
    if extra_roots.is_empty() {
        return Ok(None);
    }
    Ok(Some(Connector::Rustls(rustls_config(extra_roots)?)))
}

/// The rustls set-up: the webpki roots plus `extra_roots`.
pub(crate) fn rustls_config(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra_roots {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("an extra root certificate is unusable: {e}"))?;
    }
    // ring explicitly: the one crypto provider in this build, no process default needed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
