//! Who is calling: token verifiers and the identity allow-list.
//!
//! Every RPC authenticates first, before it looks at the uid, so an unauthenticated caller
//! cannot learn whether a session exists. The token travels in the `authorization` metadata,
//! raw (as upstream s2uc sends it) or as `Bearer <token>`.

pub mod introspect;
pub mod static_tokens;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::error::ControlError;

/// An authenticated principal (user name, Globus identity, or `anonymous` in no-auth mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(pub String);

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A boxed future for the object-safe verifier trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a bearer token into an identity.
pub trait Verifier: Send + Sync {
    /// A short description for the start-up log (never includes secrets).
    fn describe(&self) -> String;

    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, ControlError>>;
}

/// The server's authentication and authorization policy.
#[derive(Clone)]
pub struct Authenticator {
    /// `None`: the explicit no-auth development mode.
    verifier: Option<Arc<dyn Verifier>>,
    /// `None`: any verified identity may use the gateway.
    allowed: Option<Arc<HashSet<String>>>,
}

impl Authenticator {
    pub fn new(verifier: Arc<dyn Verifier>, allowed: Option<HashSet<String>>) -> Self {
        Self {
            verifier: Some(verifier),
            allowed: allowed.map(Arc::new),
        }
    }

    /// No authentication at all; every caller is `anonymous`. Development only.
    pub fn disabled() -> Self {
        Self {
            verifier: None,
            allowed: None,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.verifier.is_none()
    }

    pub fn describe(&self) -> String {
        match &self.verifier {
            None => "DISABLED (--no-auth): anyone who reaches the port can use this gateway".into(),
            Some(v) => v.describe(),
        }
    }

    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Identity, ControlError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Identity("anonymous".into()));
        };
        let token = bearer_token(metadata)?;
        let identity = verifier.verify(token).await?;
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&identity.0)
        {
            return Err(ControlError::NotAllowed {
                identity: identity.0,
            });
        }
        Ok(identity)
    }
}

/// The token from the `authorization` metadata, with an optional `Bearer ` prefix removed.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, ControlError> {
    let raw = metadata
        .get("authorization")
        .ok_or(ControlError::MissingToken)?
        .to_str()
        .map_err(|_| ControlError::InvalidToken {
            reason: "the authorization metadata is not printable ASCII".into(),
        })?
        .trim();
    let token = match raw.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("bearer") && raw[6..].is_empty() => "",
        Some(p) if p.eq_ignore_ascii_case("bearer") && raw[6..].starts_with(' ') => raw[6..].trim(),
        _ => raw,
    };
    if token.is_empty() {
        return Err(ControlError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn token_raw_or_bearer() {
        assert_eq!(bearer_token(&md("abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&md("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&md("bearer   abc ")).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&md("Bearer ")),
            Err(ControlError::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&MetadataMap::new()),
            Err(ControlError::MissingToken)
        ));
    }
}
