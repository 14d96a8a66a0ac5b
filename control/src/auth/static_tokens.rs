//! The static token file: one line per token, `<identity> sha256:<hex of SHA-256(token)>`.
//! Only hashes are stored, so the file is not a secret; `s2cs token new` appends a line and
//! writes the token itself to a 0600 file for its user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{BoxFuture, Identity, Verifier};
use crate::error::ControlError;
use crate::secret::token_hash;

/// Verifies tokens against the hashes in a token file.
#[derive(Debug)]
pub struct StaticTokens {
    path: PathBuf,
    by_hash: HashMap<[u8; 32], Identity>,
}

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading token file {path} failed: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token file {path} line {line}: expected '<identity> sha256:<64 hex digits>' \
         (create entries with 's2cs token new')"
    )]
    Syntax { path: PathBuf, line: usize },
    #[error("token file {path} has no tokens; add one with 's2cs token new'")]
    Empty { path: PathBuf },
}

impl StaticTokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut by_hash = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || TokenFileError::Syntax {
                path: path.to_owned(),
                line: i + 1,
            };
            let mut parts = line.split_whitespace();
            let (Some(identity), Some(hash), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(syntax());
            };
            let hex_hash = hash.strip_prefix("sha256:").ok_or_else(syntax)?;
            let bytes = hex::decode(hex_hash).map_err(|_| syntax())?;
            let hash: [u8; 32] = bytes.try_into().map_err(|_| syntax())?;
            by_hash.insert(hash, Identity(identity.to_owned()));
        }
        if by_hash.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            by_hash,
        })
    }

    /// The line to add to a token file for `token`.
    pub fn entry(identity: &str, token: &str) -> String {
        format!("{identity} sha256:{}", hex::encode(token_hash(token)))
    }
}

impl Verifier for StaticTokens {
    fn describe(&self) -> String {
        format!(
            "static token file {} ({} tokens)",
            self.path.display(),
            self.by_hash.len()
        )
    }

    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, ControlError>> {
        let found = self.by_hash.get(&token_hash(token)).cloned();
        Box::pin(async move {
            found.ok_or_else(|| ControlError::InvalidToken {
                reason: "it matches no entry of the gateway's token file".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_known_tokens_only() {
        let dir = std::env::temp_dir().join(format!("s2-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        let body = format!(
            "# comment\n{}\n\n{}\n",
            StaticTokens::entry("alice", "tok-a"),
            StaticTokens::entry("bob", "tok-b")
        );
        std::fs::write(&path, body).unwrap();
        let v = StaticTokens::load(&path).unwrap();
        assert_eq!(v.verify("tok-a").await.unwrap(), Identity("alice".into()));
        assert_eq!(v.verify("tok-b").await.unwrap(), Identity("bob".into()));
        assert!(matches!(
            v.verify("nope").await,
            Err(ControlError::InvalidToken { .. })
        ));
        std::fs::write(&path, "alice deadbeef\n").unwrap();
        assert!(matches!(
            StaticTokens::load(&path),
            Err(TokenFileError::Syntax { line: 1, .. })
        ));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            StaticTokens::load(&path),
            Err(TokenFileError::Empty { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
