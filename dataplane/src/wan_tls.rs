//! WAN-leg protection for kernel TCP engines: TLS 1.3, mutually authenticated with a per-session
//! identity that both gateways derive from the same secret.
//!
//! The secret is either the per-session WAN key that `s2uc connect` generates and sends to both
//! gateways, or (in the upstream two-step flow, where the two sides share nothing but the uid)
//! the uid itself. HKDF-SHA256 turns it into an Ed25519 seed; from that seed both sides build the
//! *same* self-signed certificate, byte for byte. Each side presents it and accepts only a peer
//! that presents exactly that certificate and proves possession of its key in the handshake. So
//! only holders of the session secret can open or accept the WAN leg (like upstream's PSK, but
//! with ECDHE key exchange: forward secrecy and real encryption, not eNULL).

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, PKCS_ED25519, SerialNumber};
use ring::hkdf;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The name the client asks for; the pinned-certificate check does not depend on it.
const SERVER_NAME: &str = "scistream-wan";
const HKDF_SALT: &[u8] = b"scistream-rs/wan-identity/v1";
/// The salt of the identity QUIC apps share with the gateways of their session (app relay).
const APP_SALT: &[u8] = b"scistream-rs/app-identity/v1";

/// Why a WAN TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WanTlsError {
    #[error("the WAN secret is empty; a session needs a uid or a WAN key")]
    EmptySecret,
    #[error("building the session certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("building the TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Acceptor and connector for one session's WAN leg.
#[derive(Clone)]
pub struct WanTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for WanTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WanTls(..)")
    }
}

impl WanTls {
    /// Derives the session identity from `secret` and builds both TLS ends.
    pub fn from_secret(secret: &[u8]) -> Result<Self, WanTlsError> {
        Self::derive(secret, HKDF_SALT)
    }

    /// The identity QUIC apps of session `uid` and its gateways share on the LAN legs of the
    /// QUIC app relay: derived from the uid (which upstream hands to apps), with a salt of its
    /// own, so it never equals the WAN identity even in the two-step flow.
    pub fn for_apps(uid: &[u8]) -> Result<Self, WanTlsError> {
        Self::derive(uid, APP_SALT)
    }

    fn derive(secret: &[u8], salt: &[u8]) -> Result<Self, WanTlsError> {
        let (cert, key) = session_identity(secret, salt)?;
        // AES-128-GCM first: the cheapest AEAD with AES-NI, which matters at tens of Gbit/s;
        // AES-256-GCM and ChaCha20-Poly1305 stay available.
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        let provider = Arc::new(provider);
        let verifier = Arc::new(PinnedPeer {
            expected: cert.clone(),
            algorithms: provider.signature_verification_algorithms,
        });
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(vec![cert.clone()], key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![cert], key)?;
        let (server, client) = (Arc::new(server), Arc::new(client));
        Ok(Self {
            acceptor: TlsAcceptor::from(server.clone()),
            connector: TlsConnector::from(client.clone()),
            server,
            client,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The server end as a rustls configuration (the QUIC engine wraps it for QUIC).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// The client end as a rustls configuration.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    /// The name the client end asks for.
    pub fn server_name_str() -> &'static str {
        SERVER_NAME
    }

    pub fn server_name() -> ServerName<'static> {
        // The constant is a valid DNS name, so this conversion cannot fail.
        ServerName::try_from(SERVER_NAME).expect("constant server name is a valid DNS name")
    }
}

/// The deterministic certificate and key of a session.
fn session_identity(
    secret: &[u8],
    salt: &[u8],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), WanTlsError> {
    if secret.is_empty() {
        return Err(WanTlsError::EmptySecret);
    }
    let mut seed = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(secret)
        .expand(&[b"ed25519 seed"], Len(32))
        .and_then(|okm| okm.fill(&mut seed))
        .map_err(|_| WanTlsError::EmptySecret)?;
    // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): fixed 16-byte header, then the seed.
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8);
    let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &PKCS_ED25519)?;
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
    // Everything fixed, so both gateways produce identical bytes.
    params.serial_number = Some(SerialNumber::from_slice(&[1]));
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let cert = params.self_signed(&key_pair)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Accepts exactly one certificate (the session's), from either side of the handshake.
#[derive(Debug)]
struct PinnedPeer {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedPeer {
    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if constant_time_eq(presented.as_ref(), self.expected.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ServerCertVerifier for PinnedPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configurations allow TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PinnedPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn identity_is_deterministic_and_secret_dependent() {
        let (a1, _) = session_identity(b"uid-1", HKDF_SALT).unwrap();
        let (a2, _) = session_identity(b"uid-1", HKDF_SALT).unwrap();
        let (b, _) = session_identity(b"uid-2", HKDF_SALT).unwrap();
        let (app, _) = session_identity(b"uid-1", APP_SALT).unwrap();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(
            a1, app,
            "the app identity must differ from the WAN identity"
        );
        assert!(matches!(
            session_identity(b"", HKDF_SALT),
            Err(WanTlsError::EmptySecret)
        ));
    }

    async fn handshake(server_secret: &[u8], client_secret: &[u8]) -> std::io::Result<Vec<u8>> {
        let server = WanTls::from_secret(server_secret).unwrap();
        let client = WanTls::from_secret(client_secret).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = server.acceptor().accept(tcp).await?;
            tls.write_all(b"hello over the WAN").await?;
            tls.shutdown().await?;
            Ok::<_, std::io::Error>(())
        });
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = client
            .connector()
            .connect(WanTls::server_name(), tcp)
            .await?;
        let mut got = Vec::new();
        let read = tls.read_to_end(&mut got).await;
        let served = srv.await.unwrap();
        read?;
        served?;
        Ok(got)
    }

    #[tokio::test]
    async fn same_secret_connects() {
        assert_eq!(handshake(b"k", b"k").await.unwrap(), b"hello over the WAN");
    }

    #[tokio::test]
    async fn different_secret_is_refused_before_any_data() {
        assert!(handshake(b"k", b"other").await.is_err());
    }
}
