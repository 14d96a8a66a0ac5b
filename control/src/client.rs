//! The client side of `scistream.Control`, shared by `s2uc` and `appctrl`: channel set-up (TLS
//! trusting a given PEM, or plaintext when asked), the token in the `authorization` metadata
//! (sent raw, as upstream clients do, so upstream servers accept it too), and deadlines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::proto::control_client::ControlClient;

/// How to reach an s2cs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// PEM certificate (or CA) to trust for the server.
    pub server_cert: PathBuf,
    /// Talk plaintext gRPC (the server runs with `--ssl=false`).
    pub plaintext: bool,
    /// Name to check in the server certificate, if not the host in the address.
    pub tls_name: Option<String>,
    pub token: Option<String>,
    /// Client certificate and key (PEM) for an s2cs that requires mTLS (`--client_ca`).
    pub identity: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
}

/// Adds the token to every call.
#[derive(Clone)]
pub struct TokenInterceptor(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Client =
    ControlClient<tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>>;

/// Connects to `addr` (`host:port`).
pub async fn connect(addr: &str, opts: &ClientOptions) -> anyhow::Result<Client> {
    let parsed = crate::addr::Endpoint::parse(addr)
        .with_context(|| format!("the s2cs address '{addr}' is not host:port"))?;
    let scheme = if opts.plaintext { "http" } else { "https" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{parsed}"))?
        .connect_timeout(opts.connect_timeout);
    if !opts.plaintext {
        let pem = std::fs::read(&opts.server_cert).with_context(|| {
            format!(
                "reading the server certificate {} failed; pass --server_cert with the s2cs \
                 certificate, or --insecure-plaintext if that s2cs runs with --ssl=false",
                opts.server_cert.display()
            )
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        if let Some(name) = &opts.tls_name {
            tls = tls.domain_name(name.clone());
        }
        if let Some((cert, key)) = &opts.identity {
            let read = |p: &PathBuf| {
                std::fs::read(p)
                    .with_context(|| format!("reading client certificate file {}", p.display()))
            };
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to s2cs at {addr} ({scheme}) failed"))?;
    let token = opts
        .token
        .as_deref()
        .map(|t| t.parse())
        .transpose()
        .context("the token contains characters that cannot be sent in gRPC metadata")?;
    Ok(
        ControlClient::with_interceptor(channel, TokenInterceptor(token))
            .max_decoding_message_size(16 << 20),
    )
}

/// The token for s2uc/appctrl: `S2UC_TOKEN`, else the token file (default
/// `~/.scistream/token`), else none.
pub fn load_token(token_file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Ok(t) = std::env::var("S2UC_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_owned()));
    }
    let path = match token_file {
        Some(p) => p.clone(),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".scistream/token"),
            None => return Ok(None),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
        Ok(_) => anyhow::bail!("token file {} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && token_file.is_none() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading token file {}", path.display())),
    }
}

/// A gRPC status as a one-line message: code and the server's explanation.
pub fn describe_status(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}
