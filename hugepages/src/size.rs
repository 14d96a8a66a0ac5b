//! Quantities the operator types and the kernel prints: hugepage sizes, NUMA node ids and byte
//! counts. Units are binary throughout, as in the kernel (`2048kB`, `pagesize=2M` and `hugepagesz=1G`
//! all mean powers of 1024), so `2MB` is 2 MiB here too.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// The smallest page a hugepage can be: the base page of every Linux architecture.
const MIN_PAGE: u64 = 4 * KIB;

/// A hugepage size: a power of two of at least 4 KiB. x86-64 has 2M and 1G; other architectures
/// have others (arm64: 64K, 32M, 512M), which is why this is not a closed enum.
///
/// Parsed from `2M`, `2MiB`, `2MB`, `1G`, `1GiB`, `2048kB` or a plain byte count; displayed as
/// `2M` / `1G`, the form `mount -o pagesize=` and `hugepagesz=` accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageSize(u64);

impl PageSize {
    pub const TWO_MIB: Self = Self(2 * MIB);
    pub const ONE_GIB: Self = Self(GIB);

    /// A page size of `bytes`, which must be a power of two of at least 4 KiB.
    pub fn from_bytes(bytes: u64) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidPageSize {
            input: bytes.to_string(),
            reason,
        };
        if !bytes.is_power_of_two() {
            return Err(invalid("not a power of two"));
        }
        if bytes < MIN_PAGE {
            return Err(invalid("smaller than the 4K base page"));
        }
        Ok(Self(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size in KiB, as in the sysfs directory name `hugepages-2048kB`.
    pub fn kib(self) -> u64 {
        self.0 / KIB
    }

    /// Where [`crate::ensure_mounted`] puts a hugetlbfs of this size when none is mounted:
    /// `/dev/hugepages` for 2M (where systemd's `dev-hugepages.mount` puts the default size) and
    /// `/dev/hugepages1G` for 1G (the name DPDK's documentation uses), `/dev/hugepages<size>` else.
    pub fn default_mount_path(self) -> PathBuf {
        if self == Self::TWO_MIB {
            PathBuf::from("/dev/hugepages")
        } else {
            PathBuf::from(format!("/dev/hugepages{self}"))
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes are powers of two of at least 4 KiB, so one of these divides exactly.
        if self.0.is_multiple_of(GIB) {
            write!(f, "{}G", self.0 / GIB)
        } else if self.0.is_multiple_of(MIB) {
            write!(f, "{}M", self.0 / MIB)
        } else {
            write!(f, "{}K", self.0 / KIB)
        }
    }
}

impl FromStr for PageSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = parse_quantity(s).ok_or_else(|| Error::InvalidPageSize {
            input: s.to_owned(),
            reason: "not a number with a unit",
        })?;
        Self::from_bytes(bytes).map_err(|e| match e {
            Error::InvalidPageSize { reason, .. } => Error::InvalidPageSize {
                input: s.to_owned(),
                reason,
            },
            other => other,
        })
    }
}

impl Serialize for PageSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PageSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A NUMA node, as in `/sys/devices/system/node/node<N>`. A kernel without NUMA has node 0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = Error;

    /// Accepts `0` and `node0`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s.trim().strip_prefix("node").unwrap_or(s.trim());
        digits.parse().map(Self).map_err(|_| Error::InvalidNode {
            input: s.to_owned(),
        })
    }
}

/// Parses a byte count: `1073741824`, `512M`, `1G`, `4GiB`, `2048 kB` (binary units).
pub fn parse_bytes(s: &str) -> Result<u64, Error> {
    parse_quantity(s).ok_or_else(|| Error::InvalidBytes {
        input: s.to_owned(),
    })
}

/// A byte count for people: `512 MiB`, `1.5 GiB`, `300 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// A decimal integer with an optional binary unit; `None` when malformed or past `u64`.
fn parse_quantity(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_parse_in_every_spelling_the_kernel_and_people_use() {
        for s in [
            "2M", "2MiB", "2MB", "2m", "2048kB", "2048K", "2097152", " 2M ",
        ] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::TWO_MIB, "{s}");
        }
        for s in ["1G", "1GiB", "1024M", "1048576kB"] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::ONE_GIB, "{s}");
        }
        assert_eq!("64K".parse::<PageSize>().unwrap().bytes(), 64 * KIB);
    }

    #[test]
    fn page_sizes_display_as_mount_options_want_them() {
        assert_eq!(PageSize::TWO_MIB.to_string(), "2M");
        assert_eq!(PageSize::ONE_GIB.to_string(), "1G");
        assert_eq!(PageSize::from_bytes(64 * KIB).unwrap().to_string(), "64K");
        assert_eq!(PageSize::from_bytes(512 * MIB).unwrap().to_string(), "512M");
        assert_eq!(PageSize::TWO_MIB.kib(), 2048);
    }

    #[test]
    fn bad_page_sizes_say_why_and_how_to_write_one() {
        for (s, reason) in [
            ("3M", "not a power of two"),
            ("2", "smaller than the 4K base page"),
            ("big", "not a number with a unit"),
            ("2X", "not a number with a unit"),
            ("", "not a number with a unit"),
        ] {
            let err = s.parse::<PageSize>().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidPageSize { input, reason: r } if input == s && *r == reason),
                "{s}: {err}"
            );
            assert!(err.to_string().contains("like 2M, 1G"), "{err}");
        }
    }

    #[test]
    fn default_mount_paths_follow_systemd_and_dpdk_docs() {
        assert_eq!(
            PageSize::TWO_MIB.default_mount_path(),
            PathBuf::from("/dev/hugepages")
        );
        assert_eq!(
            PageSize::ONE_GIB.default_mount_path(),
            PathBuf::from("/dev/hugepages1G")
        );
    }

    #[test]
    fn node_ids_and_byte_counts_parse() {
        assert_eq!("0".parse::<NodeId>().unwrap(), NodeId(0));
        assert_eq!("node3".parse::<NodeId>().unwrap(), NodeId(3));
        assert!(matches!(
            "x".parse::<NodeId>(),
            Err(Error::InvalidNode { .. })
        ));
        assert_eq!(parse_bytes("1G").unwrap(), GIB);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 * MIB);
        assert_eq!(parse_bytes("2048 kB").unwrap(), 2 * MIB);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(matches!(
            parse_bytes("99999999999T"),
            Err(Error::InvalidBytes { .. })
        ));
        assert!(parse_bytes("1.5G").is_err());
    }

    #[test]
    fn byte_counts_format_for_people() {
        assert_eq!(format_bytes(300), "300 B");
        assert_eq!(format_bytes(2 * MIB), "2 MiB");
        assert_eq!(format_bytes(GIB + GIB / 2), "1.5 GiB");
    }

    #[test]
    fn page_sizes_serialize_as_strings() {
        let json = serde_json::to_string(&PageSize::ONE_GIB).unwrap();
        assert_eq!(json, "\"1G\"");
        assert_eq!(
            serde_json::from_str::<PageSize>(&json).unwrap(),
            PageSize::ONE_GIB
        );
        assert!(serde_json::from_str::<PageSize>("\"3M\"").is_err());
    }
}
