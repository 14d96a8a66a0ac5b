//! Source allow-lists for listeners: only a session's expected peers may connect.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Networks allowed to connect; empty means "anyone".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

/// A malformed allow-list entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{entry}' is not an IP address or CIDR (examples: 192.0.2.7, 192.0.2.0/24, 2001:db8::/32)"
)]
pub struct AllowListError {
    pub entry: String,
}

impl AllowList {
    /// Anyone may connect.
    pub fn any() -> Self {
        Self::default()
    }

    /// Parses addresses (`192.0.2.7`, `::1`) and CIDRs (`192.0.2.0/24`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let e = entry.as_ref().trim();
            let net = if let Ok(net) = IpNet::from_str(e) {
                net
            } else if let Ok(ip) = IpAddr::from_str(e.trim_start_matches('[').trim_end_matches(']'))
            {
                IpNet::from(ip)
            } else {
                return Err(AllowListError {
                    entry: e.to_owned(),
                });
            };
            nets.push(net);
        }
        Ok(Self { nets })
    }

    pub fn is_any(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.is_empty() || self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn entries(&self) -> Vec<String> {
        self.nets.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let list = AllowList::parse(&["192.0.2.0/24", "2001:db8::1", "[::1]"]).unwrap();
        assert!(list.allows("192.0.2.9".parse().unwrap()));
        assert!(list.allows("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!list.allows("198.51.100.1".parse().unwrap()));
        assert!(list.allows("2001:db8::1".parse().unwrap()));
        assert!(list.allows("::1".parse().unwrap()));
        assert!(AllowList::any().allows("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage_with_the_entry() {
        let err = AllowList::parse(&["10.0.0.0/33"]).unwrap_err();
        assert_eq!(err.entry, "10.0.0.0/33");
        assert!(AllowList::parse(&["host.example"]).is_err());
    }
}
