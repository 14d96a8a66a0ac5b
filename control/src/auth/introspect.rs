//! OAuth2 token introspection (RFC 7662), as Globus Auth offers it.
//!
//! The gateway is a confidential client: it POSTs `token=…&include=identity_set` to the
//! introspection endpoint with HTTP basic auth (client id and secret) and accepts the token when
//! it is `active`, carries the required scope (Globus: `https://auth.globus.org/scopes/<client
//! id>/scistream`), names the gateway in `aud` when an audience is configured, and is within its
//! `nbf`/`exp` window (3 s slack, as upstream). Positive answers are cached until the token
//! expires or `cache_ttl` passes, keyed by the token's SHA-256 (the token itself is not kept).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{BoxFuture, Identity, Verifier};
use crate::error::ControlError;
use crate::secret::token_hash;

/// Globus Auth's introspection endpoint.
pub const GLOBUS_INTROSPECT_URL: &str = "https://auth.globus.org/v2/oauth2/token/introspect";
const CLOCK_SLACK_SECS: i64 = 3;

/// Settings of the introspection verifier.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    /// The scope a token must carry.
    pub required_scope: String,
    /// If set, `aud` must contain it.
    pub audience: Option<String>,
    pub cache_ttl: Duration,
    pub timeout: Duration,
}

impl IntrospectionConfig {
    /// Globus defaults for a gateway registered as `client_id`.
    pub fn globus(client_id: &str, client_secret: String) -> Self {
        Self {
            url: GLOBUS_INTROSPECT_URL.into(),
            client_id: client_id.into(),
            client_secret,
            required_scope: format!("https://auth.globus.org/scopes/{client_id}/scistream"),
            audience: Some(client_id.into()),
            cache_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The verifier.
pub struct Introspection {
    config: IntrospectionConfig,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

#[derive(Debug, Deserialize)]
struct IntrospectionResponse {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Self::One(a) => a == want,
            Self::Many(v) => v.iter().any(|a| a == want),
        }
    }
}

impl Introspection {
    pub fn new(config: IntrospectionConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Identity> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some((id, until)) if *until > Instant::now() => Some(id.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    async fn introspect(&self, token: &str) -> Result<Identity, ControlError> {
        let unavailable = |reason: String| ControlError::AuthUnavailable { reason };
        let response = self
            .http
            .post(&self.config.url)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("token", token), ("include", "identity_set")])
            .send()
            .await
            .map_err(|e| {
                unavailable(format!("introspection at {} failed: {e}", self.config.url))
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!(
                "introspection at {} answered HTTP {status}; check the gateway's client id and \
                 secret",
                self.config.url
            )));
        }
        let body: IntrospectionResponse = response
            .json()
            .await
            .map_err(|e| unavailable(format!("introspection answer is not RFC 7662 JSON: {e}")))?;
        let invalid = |reason: &str| ControlError::InvalidToken {
            reason: format!("{reason} (scope {})", self.config.required_scope),
        };
        if !body.active {
            return Err(invalid("the token is not active (expired or revoked)"));
        }
        let now = unix_now();
        if body.exp.is_some_and(|exp| exp + CLOCK_SLACK_SECS < now) {
            return Err(invalid("the token has expired"));
        }
        if body.nbf.is_some_and(|nbf| nbf - CLOCK_SLACK_SECS > now) {
            return Err(invalid("the token is not valid yet"));
        }
        let has_scope = body.scope.as_deref().is_some_and(|s| {
            s.split_whitespace()
                .any(|x| x == self.config.required_scope)
        });
        if !has_scope {
            return Err(invalid("the token lacks the gateway's scope"));
        }
        if let Some(want) = &self.config.audience
            && !body.aud.as_ref().is_some_and(|a| a.contains(want))
        {
            return Err(invalid("the token was not issued for this gateway (aud)"));
        }
        let name = body
            .username
            .or(body.sub)
            .ok_or_else(|| invalid("the token names no identity (no username or sub)"))?;
        let mut ttl = self.config.cache_ttl;
        if let Some(exp) = body.exp {
            let left = u64::try_from(exp - now).unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(left));
        }
        let identity = Identity(name);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token_hash(token), (identity.clone(), Instant::now() + ttl));
        Ok(identity)
    }
}

impl Verifier for Introspection {
    fn describe(&self) -> String {
        format!(
            "OAuth2 token introspection at {} (client {}, scope {})",
            self.config.url, self.config.client_id, self.config.required_scope
        )
    }

    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, ControlError>> {
        Box::pin(async move {
            if let Some(id) = self.cached(&token_hash(token)) {
                return Ok(id);
            }
            self.introspect(token).await
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A minimal RFC 7662 server: answers from `tokens` (token → JSON body) and counts calls.
    async fn fake_server(
        tokens: Vec<(&'static str, String)>,
    ) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (calls.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Read headers and the (small) form body.
                loop {
                    let n = sock.read(&mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if req.len() >= i + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                s.lock().unwrap().push(text.clone());
                let body = tokens
                    .iter()
                    .find(|(t, _)| text.contains(&format!("token={t}&")))
                    .map_or_else(|| r#"{"active": false}"#.to_string(), |(_, b)| b.clone());
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        (url, calls, seen)
    }

    fn config(url: String) -> IntrospectionConfig {
        IntrospectionConfig {
            url,
            ..IntrospectionConfig::globus("gw-client", "gw-secret".into())
        }
    }

    #[tokio::test]
    async fn globus_style_checks_and_cache() {
        let scope = "https://auth.globus.org/scopes/gw-client/scistream";
        let exp = unix_now() + 3600;
        let good = format!(
            r#"{{"active":true,"scope":"openid {scope}","aud":["gw-client","x"],"exp":{exp},"username":"alice@example.org","sub":"123"}}"#
        );
        let wrong_scope = format!(
            r#"{{"active":true,"scope":"openid","aud":"gw-client","exp":{exp},"sub":"s"}}"#
        );
        let wrong_aud =
            format!(r#"{{"active":true,"scope":"{scope}","aud":"other","exp":{exp},"sub":"s"}}"#);
        let expired = format!(
            r#"{{"active":true,"scope":"{scope}","aud":"gw-client","exp":{},"sub":"s"}}"#,
            unix_now() - 60
        );
        let (url, calls, seen) = fake_server(vec![
            ("good", good),
            ("wrongscope", wrong_scope),
            ("wrongaud", wrong_aud),
            ("expired", expired),
        ])
        .await;
        let v = Introspection::new(config(url)).unwrap();
        assert_eq!(
            v.verify("good").await.unwrap(),
            Identity("alice@example.org".into())
        );
        // Cached: no second call.
        assert_eq!(
            v.verify("good").await.unwrap(),
            Identity("alice@example.org".into())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The request is a basic-auth form POST asking for the identity set.
        let req = seen.lock().unwrap()[0].clone();
        assert!(req.starts_with("POST /introspect"), "{req}");
        assert!(
            req.to_ascii_lowercase().contains("authorization: basic "),
            "{req}"
        );
        assert!(req.contains("include=identity_set"), "{req}");
        for (tok, why) in [
            ("wrongscope", "scope"),
            ("wrongaud", "aud"),
            ("expired", "expired"),
            ("unknown", "not active"),
        ] {
            match v.verify(tok).await {
                Err(ControlError::InvalidToken { reason }) => {
                    assert!(reason.contains(why), "{tok}: {reason}")
                }
                other => panic!("{tok}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_unavailable_not_unauthenticated() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        drop(listener);
        let v = Introspection::new(config(url)).unwrap();
        assert!(matches!(
            v.verify("t").await,
            Err(ControlError::AuthUnavailable { .. })
        ));
    }
}
