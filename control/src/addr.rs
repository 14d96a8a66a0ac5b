//! `host:port` endpoints as they travel on the wire: `192.0.2.1:5100`, `[2001:db8::1]:5100`,
//! `gw.example.org:5100`. Upstream split on ':' and broke IPv6; here brackets are required for
//! IPv6 literals and everything is validated before use.

use std::net::{IpAddr, SocketAddr};

/// A parsed endpoint, host not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Why an endpoint string is malformed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("'{input}' is not host:port ({why}); examples: 192.0.2.1:5100, [2001:db8::1]:5100")]
pub struct AddrError {
    pub input: String,
    pub why: &'static str,
}

impl Endpoint {
    pub fn parse(input: &str) -> Result<Self, AddrError> {
        let err = |why| AddrError {
            input: input.to_owned(),
            why,
        };
        let s = input.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| err("IPv6 needs [addr]:port"))?;
            let ip: std::net::Ipv6Addr = h.parse().map_err(|_| err("bad IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip)), p)
        } else {
            let (h, p) = s.rsplit_once(':').ok_or_else(|| err("missing :port"))?;
            if h.contains(':') {
                return Err(err("IPv6 addresses must be in brackets"));
            }
            if h.is_empty() {
                return Err(err("missing host"));
            }
            let host = match h.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) if is_hostname(h) => Host::Name(h.to_owned()),
                Err(_) => return Err(err("bad host name")),
            };
            (host, p)
        };
        let port: u16 = port.parse().map_err(|_| err("port must be 1-65535"))?;
        if port == 0 {
            return Err(err("port must be 1-65535"));
        }
        Ok(Self { host, port })
    }

    /// Resolves to one socket address (the first the resolver returns).
    pub async fn resolve(&self) -> Result<SocketAddr, AddrError> {
        match &self.host {
            Host::Ip(ip) => Ok(SocketAddr::new(*ip, self.port)),
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), self.port))
                .await
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| AddrError {
                    input: self.to_string(),
                    why: "host name does not resolve",
                }),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            Host::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// Formats an address the way the wire carries it (brackets for IPv6).
pub fn format_host_port(ip: IpAddr, port: u16) -> String {
    Endpoint {
        host: Host::Ip(ip),
        port,
    }
    .to_string()
}

fn is_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_v6_and_names() {
        let e = Endpoint::parse("192.0.2.1:5100").unwrap();
        assert_eq!(e.to_string(), "192.0.2.1:5100");
        let e = Endpoint::parse("[2001:db8::1]:5100").unwrap();
        assert_eq!(e.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(e.to_string(), "[2001:db8::1]:5100");
        let e = Endpoint::parse("gw-1.example.org:80").unwrap();
        assert_eq!(e.host, Host::Name("gw-1.example.org".into()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "5100",
            ":5100",
            "host:",
            "host:0",
            "host:65536",
            "2001:db8::1:5100",
            "[2001:db8::1]5100",
            "[nothex]:1",
            "bad_host:1",
            "a..b:1",
            "1.2.3.4:-1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[tokio::test]
    async fn resolves_literals_and_localhost() {
        let a = Endpoint::parse("[::1]:7").unwrap().resolve().await.unwrap();
        assert_eq!(a, "[::1]:7".parse().unwrap());
        assert!(
            Endpoint::parse("localhost:7")
                .unwrap()
                .resolve()
                .await
                .is_ok()
        );
    }
}
