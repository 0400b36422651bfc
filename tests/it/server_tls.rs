//! `wss://` over real sockets, with a self-signed certificate made in the test: the
//! in-process server with a TLS config, a raw connection over rustls and the client library
//! (files over HTTPS on the same port too); and
//! `rtm-tui serve --tls-cert/--tls-key` as a process.

use std::sync::Arc;

use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use crate::support::{start_server, test_config};
use rtm::client::{Client, ClientConfig};
use rtm::server::RunningServer;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const APP: &str = "demo";

/// A self-signed certificate for 127.0.0.1 and localhost.
fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate")
}

/// An in-process server on `wss://` with a [`self_signed`] certificate, and the certificate
/// a client must trust to reach it.
async fn tls_server() -> (RunningServer, CertificateDer<'static>) {
    let certified = self_signed();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut config = test_config();
    config.tls = Some(rtm::server::tls_acceptor_from_der(vec![cert.clone()], key).unwrap());
    (start_server(config).await, cert)
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    let (server, cert) = tls_server().await;
    let url = server.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("wss handshake");
    raw::from_socket(ws).login(APP, "alice").await;

    // Plain ws:// to a TLS port fails; so does wss:// without trusting the certificate.
    let plain = url.replacen("wss://", "ws://", 1);
    assert!(tokio_tungstenite::connect_async(plain).await.is_err());
    assert!(tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_library_speaks_wss() {
    let (server, cert) = tls_server().await;

    let mut trusting = ClientConfig::new(server.url(), APP);
    trusting.extra_root_certificates = vec![cert.to_vec()];
    let (client, _events) = Client::new(trusting).unwrap();
    let login = client.login(None, "alice").await.expect("login over wss");
    assert_eq!(login.user, "alice");
    client.ping().await.expect("ping over wss");
    // Files go over HTTPS on the same port, with the same trust.
    let data = crate::client_media::pattern(300_000);
    let source = rtm::client::MediaSource::Bytes {
        name: "over-tls.bin".into(),
        data: data.clone(),
    };
    let message = client
        .upload_file(source)
        .finish()
        .await
        .expect("upload over https");
    let id = message.media_id().expect("a file message").to_string();
    let got = client
        .download_media(&id, rtm::client::DownloadTarget::Memory)
        .finish()
        .await
        .expect("download over https");
    assert_eq!(got, rtm::client::Downloaded::Memory(data));

    // Without the certificate among its roots the client refuses the server.
    let (stranger, _events) = Client::new(ClientConfig::new(server.url(), APP)).unwrap();
    assert!(stranger.login(None, "bob").await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn tls_flags_serve_wss() {
    let dir = tempfile::tempdir().unwrap();
    let certified = self_signed();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, certified.cert.pem()).unwrap();
    std::fs::write(&key_pem, certified.signing_key.serialize_pem()).unwrap();
    let server = ServerProcess::start_with(&[
        "--listen",
        "127.0.0.1:0",
        "--ephemeral",
        "--tls-cert",
        cert_pem.to_str().unwrap(),
        "--tls-key",
        key_pem.to_str().unwrap(),
    ])
    .await;
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let mut config = ClientConfig::new(server.url(), "demo");
    config.extra_root_certificates = vec![certified.cert.der().to_vec()];
    let (client, _events) = Client::new(config).unwrap();
    client.login(None, "alice").await.expect("login over wss");
    client.ping().await.expect("ping");
    server.kill9().await;
}
