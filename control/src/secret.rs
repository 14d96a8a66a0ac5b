//! Session secrets: uids (which double as WAN key material in the upstream two-step flow),
//! WAN keys and bearer tokens. They are generated with the OS CSPRNG, read from files or the
//! environment (never expected on argv), written to 0600 files, and identified in logs only by a
//! short non-secret tag.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Fills `buf` from the OS CSPRNG.
fn fill_random(buf: &mut [u8]) {
    // getrandom(2) only fails on a kernel without it; nothing here can work without randomness.
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random number generator failed");
}

/// A fresh uid: 128 random bits in the UUID v4 layout upstream tools expect.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A fresh 256-bit WAN key, hex encoded.
pub fn new_wan_key() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    hex::encode(b)
}

/// A fresh bearer token for the static token file (256 bits, URL-safe hex).
pub fn new_token() -> String {
    new_wan_key()
}

/// The non-secret tag a session is known by in logs and listings: 8 hex digits of SHA-256(uid).
pub fn tag(uid: &str) -> String {
    hex::encode(&digest::digest(&digest::SHA256, uid.as_bytes()).as_ref()[..4])
}

/// SHA-256 of a token, as stored in the static token file.
pub fn token_hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Writes `contents` to `path` readable by the owner only (0600), replacing the file.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if path.exists() {
        fs::remove_file(path)?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// Reads a secret given on a command line as a *reference*: `@PATH` (file contents),
/// `env:NAME` (environment variable) or `-` (first line of stdin). A literal value is accepted
/// for compatibility with upstream command lines, with a warning that it shows up in `ps`.
pub fn read_secret_arg(what: &str, value: &str) -> anyhow::Result<String> {
    let secret = if let Some(path) = value.strip_prefix('@') {
        fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the {what} from {path} failed: {e}"))?
    } else if let Some(name) = value.strip_prefix("env:") {
        std::env::var(name).map_err(|_| anyhow::anyhow!("the {what} variable {name} is not set"))?
    } else if value == "-" {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line
    } else {
        eprintln!(
            "warning: the {what} was given on the command line, where other users can see it \
             (ps, shell history); pass @FILE, env:NAME or - instead"
        );
        value.to_owned()
    };
    let secret = secret.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "the {what} is empty");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn uids_are_v4_shaped_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(tag(&a).len(), 8);
        assert_eq!(tag(&a), tag(&a));
    }

    #[test]
    fn private_files_are_0600_and_references_resolve() {
        let dir = std::env::temp_dir().join(format!("s2-secret-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("uid");
        write_private(&p, "s3cret\n").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            read_secret_arg("uid", &format!("@{}", p.display())).unwrap(),
            "s3cret"
        );
        write_private(&p, "again").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "again");
        assert!(read_secret_arg("uid", "env:S2_SURELY_UNSET_VARIABLE").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
