//! The profile: one TOML document per NIC model, parsed into [`Profile`] and validated on
//! load. Field meanings, units, defaults and ranges are listed in this crate's `README.md`;
//! the defaults themselves live in [`crate::defaults`].
//!
//! Loading is [`Profile::from_toml_str`] (text plus where it came from), [`Profile::load`] (a
//! file), [`Profile::builtin`] (a profile shipped in `profiles/`) and [`Profile::resolve`]
//! (a builtin name if there is one, else a path). Every loader parses with
//! `deny_unknown_fields`, so a misspelt key is an error with its line and column, then runs
//! [`Profile::validate`] and keeps its warnings ([`Profile::warnings`]).

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::defaults;
use crate::devargs::Devargs;
use crate::error::{Origin, ProfileError, Warning};
use crate::limits;
use crate::pmd::{self, PmdInfo};
use crate::port_config::RssHash;

/// A NIC model's settings. Fields are public plain data; after editing one, call
/// [`validate`](Self::validate) before deriving EAL arguments or the port configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short identifier, lowercase letters, digits, `_` and `-` (`connectx6dx`).
    pub name: String,
    /// What the profile is for, in one line.
    #[serde(default)]
    pub description: String,
    /// Layer-3 MTU in bytes (what `rte_eth_dev_set_mtu` takes): 68..=9600, less where the PMD
    /// limits it. The largest frame is `mtu + 18` ([`Profile::max_rx_pkt_len`]).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    pub driver: Driver,
    #[serde(default)]
    pub queues: Queues,
    #[serde(default)]
    pub offloads: Offloads,
    #[serde(default)]
    pub rss: Rss,
    #[serde(default)]
    pub mempool: Mempool,
    #[serde(default)]
    pub lcores: Lcores,
    #[serde(default)]
    pub eal: Eal,
    #[serde(skip)]
    origin: Origin,
    #[serde(skip)]
    warnings: Vec<Warning>,
}

fn default_mtu() -> u32 {
    defaults::MTU
}

/// `[driver]`: which PMD drives the NIC and with which device arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    /// EAL driver name: `net_mlx5`, `net_ice`, `net_virtio`, `net_af_packet`, `net_af_xdp`,
    /// `net_memif`, `net_tap`, `net_ring`, `net_null` (others are accepted with a warning
    /// and checked only by DPDK).
    pub pmd: String,
    /// How EAL finds the device: `"pci"` (`-a <BDF>,<devargs>`) or `"vdev"`
    /// (`--vdev=<pmd><index>,<devargs>`). Must match the PMD.
    pub bus: Bus,
    /// Device arguments every port of this profile gets, as a table of strings, integers and
    /// booleans (booleans render as 1/0). Keys that name a port's interface or socket
    /// (`iface`, `socket`, `role`) belong to the port instead. Default: none.
    #[serde(default)]
    pub devargs: Devargs,
}

/// The bus a PMD's devices live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    Pci,
    Vdev,
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bus::Pci => "pci",
            Bus::Vdev => "vdev",
        })
    }
}

/// `[queues]`: per port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queues {
    /// Descriptors per rx queue: a power of two, 64..=32768 (net_ice: ≤ 4096).
    pub rx_descriptors: u32,
    /// Descriptors per tx queue: a power of two, 64..=32768 (net_ice: ≤ 4096).
    pub tx_descriptors: u32,
    /// Rx queues per port, 1..=64; one per dataplane lcore is the intended layout.
    pub rx_queues: u32,
    /// Tx queues per port, 1..=64; at least one per dataplane lcore (tx queues are not shared).
    pub tx_queues: u32,
    /// Packets per rx/tx burst, 1..=512 and at most half of either ring.
    pub burst: u32,
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            rx_descriptors: defaults::RX_DESCRIPTORS,
            tx_descriptors: defaults::TX_DESCRIPTORS,
            rx_queues: defaults::RX_QUEUES,
            tx_queues: defaults::TX_QUEUES,
            burst: defaults::BURST,
        }
    }
}

/// `[offloads]`: what the NIC does instead of the CPU. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Offloads {
    /// Verify IPv4, TCP and UDP checksums on receive.
    pub rx_checksum: bool,
    /// Compute IPv4, TCP and UDP checksums on transmit.
    pub tx_checksum: bool,
    /// TCP segmentation offload: the stack hands over segments larger than the MTU.
    pub tso: bool,
    /// Large receive offload: the NIC merges TCP segments.
    pub lro: bool,
    /// Receive frames larger than one mbuf into chains of mbufs.
    pub scatter: bool,
    /// Transmit chains of mbufs.
    pub multi_seg: bool,
}

/// `[rss]`: receive-side scaling across rx queues.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rss {
    /// Spread received packets over the rx queues by a hash. Default off.
    pub enabled: bool,
    /// What the hash covers: any of `"ipv4"`, `"ipv6"`, `"tcp"`, `"udp"` (`tcp`/`udp` need an
    /// IP version). Default: all four.
    pub hash: Vec<RssHash>,
    /// The hash key in hex, exactly the PMD's key length (40 bytes = 80 hex digits for
    /// mlx5, 52 bytes for ice). Default: the device's own key.
    pub key: Option<String>,
}

impl Default for Rss {
    fn default() -> Self {
        Self {
            enabled: false,
            hash: defaults::RSS_HASH.to_vec(),
            key: None,
        }
    }
}

/// `[mempool]`: the one mbuf pool the ports and the stack share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mempool {
    /// Mbufs in the pool. Must cover every descriptor of every port plus each lcore's burst
    /// and cache ([`Profile::minimum_mbufs`]); 2^n - 1 uses the pool's ring fully.
    pub mbufs: u32,
    /// Per-lcore cache: ≤ 512 (`RTE_MEMPOOL_CACHE_MAX_SIZE`) and 1.5 × cache ≤ mbufs.
    pub cache: u32,
    /// Bytes per mbuf including the 128-byte headroom: ≤ 65535, and ≥ mtu + 18 + 128 unless
    /// `offloads.scatter` and `offloads.multi_seg` are on (frames then go as mbuf chains).
    pub data_room: u32,
}

impl Default for Mempool {
    fn default() -> Self {
        Self {
            mbufs: defaults::MBUFS,
            cache: defaults::MEMPOOL_CACHE,
            data_room: defaults::DATA_ROOM,
        }
    }
}

/// `[lcores]`: the recommended core layout for this NIC (the s2cs `--cores` option can give
/// another; see [`LcoreLayout`](crate::LcoreLayout)).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lcores {
    /// The main lcore (control work, EAL's service thread). Default 0.
    pub main: u32,
    /// Dataplane lcores: a list of lcore ids (`[1, 2]`) or a count (`2`: the first online
    /// cores other than `main`). Default: 1.
    pub dataplane: DataplaneLcores,
    /// Hint for the stream placer: streams one dataplane lcore should carry. Default: none.
    pub streams_per_lcore: Option<u32>,
    /// NUMA node of the NIC: the mempool and queues are allocated there. Default: any.
    pub numa_node: Option<u32>,
}

impl Default for Lcores {
    fn default() -> Self {
        Self {
            main: defaults::MAIN_LCORE,
            dataplane: DataplaneLcores::Count(defaults::DATAPLANE_LCORES),
            streams_per_lcore: None,
            numa_node: None,
        }
    }
}

/// `lcores.dataplane`: explicit lcores or how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataplaneLcores {
    Count(u32),
    List(Vec<u32>),
}

impl DataplaneLcores {
    /// How many dataplane lcores this asks for.
    pub fn count(&self) -> usize {
        match self {
            DataplaneLcores::Count(n) => *n as usize,
            DataplaneLcores::List(l) => l.len(),
        }
    }
}

impl fmt::Display for DataplaneLcores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataplaneLcores::Count(n) => write!(f, "{n}"),
            DataplaneLcores::List(l) => write!(f, "{l:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for DataplaneLcores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DataplaneLcores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count of lcores (2) or a list of lcore ids ([1, 2])")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<DataplaneLcores, E> {
                u32::try_from(n)
                    .map(DataplaneLcores::Count)
                    .map_err(|_| E::custom(format!("{n} is not a count of lcores")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<DataplaneLcores, E> {
                u32::try_from(n)
                    .map(DataplaneLcores::Count)
                    .map_err(|_| E::custom(format!("{n} is not a count of lcores")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DataplaneLcores, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<u32>()? {
                    ids.push(id);
                }
                Ok(DataplaneLcores::List(ids))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[eal]`: how EAL gets its memory and the rest of its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Eal {
    /// `"hugepages"` (default; hugetlbfs must be mounted with pages reserved),
    /// `"no-huge"` (`--no-huge -m <memory_mb>`, anonymous memory, tests) or `"in-memory"`
    /// (`--in-memory`, hugepages without files).
    pub memory: Memory,
    /// EAL memory in MiB (`-m`), 64..=1048576. Default: 256 with `no-huge`, else none (EAL
    /// grows on demand).
    pub memory_mb: Option<u32>,
    /// IOVA mode: `"auto"` (default, EAL picks), `"va"` or `"pa"`.
    pub iova: Iova,
    /// `--file-prefix` for EAL's runtime files, so processes do not collide. Without it a
    /// process runs with `--no-shconf` (no secondary processes).
    pub file_prefix: Option<String>,
    /// `--log-level` arguments: `"lib.eal:error"`, `"pmd.net.mlx5:debug"`, `"notice"`.
    pub log_levels: Vec<String>,
    /// Further EAL arguments, appended as given. Options derived from other fields (`-l`,
    /// `-a`, `--vdev`, `-m`, memory, IOVA and file-prefix options) are refused here.
    pub extra: Vec<String>,
}

/// Where EAL's memory comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Memory {
    #[default]
    Hugepages,
    NoHuge,
    InMemory,
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Memory::Hugepages => "hugepages",
            Memory::NoHuge => "no-huge",
            Memory::InMemory => "in-memory",
        })
    }
}

/// EAL's IOVA mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Iova {
    #[default]
    Auto,
    Va,
    Pa,
}

impl Eal {
    /// `-m`: `memory_mb`, or 256 with `no-huge`.
    pub fn effective_memory_mb(&self) -> Option<u32> {
        match (self.memory_mb, self.memory) {
            (Some(mb), _) => Some(mb),
            (None, Memory::NoHuge) => Some(defaults::NO_HUGE_MEMORY_MB),
            (None, _) => None,
        }
    }
}

impl Profile {
    /// Parses and validates profile text; `origin` says where it came from in errors.
    pub fn from_toml_str(text: &str, origin: Origin) -> Result<Profile, ProfileError> {
        let mut profile: Profile = toml::from_str(text).map_err(|source| ProfileError::Parse {
            origin: origin.clone(),
            source: Box::new(source),
        })?;
        profile.origin = origin;
        profile.warnings = profile.validate()?;
        Ok(profile)
    }

    /// Reads, parses and validates a profile file.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            builtins: crate::builtin_names().to_vec(),
            source,
        })?;
        Self::from_toml_str(&text, Origin::File(path.to_owned()))
    }

    /// A profile shipped with this crate (see [`builtin_names`](crate::builtin_names)).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (name, text) =
            crate::builtin::find(name).ok_or_else(|| ProfileError::UnknownBuiltin {
                name: name.to_owned(),
                builtins: crate::builtin_names().to_vec(),
            })?;
        Self::from_toml_str(text, Origin::Builtin(name))
    }

    /// A builtin profile if `name_or_path` names one, else the file at that path. A word with
    /// no `/` and no `.toml` that is not a builtin is reported as an unknown builtin (with the
    /// list), anything else as a file that cannot be read.
    pub fn resolve(name_or_path: &str) -> Result<Profile, ProfileError> {
        if crate::builtin::find(name_or_path).is_some() {
            return Self::builtin(name_or_path);
        }
        let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
        if looks_like_path || Path::new(name_or_path).exists() {
            Self::load(name_or_path)
        } else {
            Self::builtin(name_or_path)
        }
    }

    /// Checks every rule that needs only the profile; returns the warnings, or every
    /// violation at once.
    pub fn validate(&self) -> Result<Vec<Warning>, ProfileError> {
        crate::validate::profile(self)
    }

    /// Where the profile was loaded from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Warnings found when the profile was loaded (log them).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// What this crate knows about the profile's PMD (`None` for a PMD it does not know).
    pub fn pmd(&self) -> Option<&'static PmdInfo> {
        pmd::lookup(&self.driver.pmd)
    }

    /// The largest frame received: MTU + 14 (Ethernet header) + 4 (CRC), as ethdev derives it.
    pub fn max_rx_pkt_len(&self) -> u32 {
        self.mtu + limits::ETHER_OVERHEAD
    }

    /// The fewest mbufs that keep `ports` ports and `lcores` lcores from running dry: every
    /// descriptor of every port holds one, and every lcore holds a burst in flight plus its
    /// cache:
    /// `ports × (rx_queues × rx_descriptors + tx_queues × tx_descriptors) + lcores × (burst + cache)`.
    pub fn minimum_mbufs(&self, ports: usize, lcores: usize) -> u64 {
        let q = &self.queues;
        let per_port = u64::from(q.rx_queues) * u64::from(q.rx_descriptors)
            + u64::from(q.tx_queues) * u64::from(q.tx_descriptors);
        let per_lcore = u64::from(q.burst) + u64::from(self.mempool.cache);
        ports as u64 * per_port + lcores as u64 * per_lcore
    }

    /// Estimated bytes of the mempool: per mbuf a 64-byte object header, the 128-byte
    /// `rte_mbuf` and the data room, rounded to cache lines (no private area).
    pub fn mempool_bytes(&self) -> u64 {
        let object = u64::from(limits::MBUF_HEADER) + u64::from(self.mempool.data_room);
        let object = object.div_ceil(64) * 64 + u64::from(limits::MEMPOOL_OBJECT_HEADER);
        u64::from(self.mempool.mbufs) * object
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"x\"\n[driver]\npmd = \"net_null\"\nbus = \"vdev\"\n";

    #[test]
    fn a_minimal_profile_gets_the_documented_defaults() {
        let p = Profile::from_toml_str(MINIMAL, Origin::Text("test".into())).unwrap();
        assert_eq!(p.description, defaults::DESCRIPTION);
        assert_eq!(p.mtu, defaults::MTU);
        assert_eq!(p.queues, Queues::default());
        assert_eq!(
            (
                p.queues.rx_descriptors,
                p.queues.tx_descriptors,
                p.queues.burst
            ),
            (1024, 1024, 32)
        );
        assert_eq!((p.queues.rx_queues, p.queues.tx_queues), (1, 1));
        assert_eq!(p.offloads, Offloads::default());
        assert!(!p.rss.enabled);
        assert_eq!(
            p.rss.hash,
            [RssHash::Ipv4, RssHash::Ipv6, RssHash::Tcp, RssHash::Udp]
        );
        assert_eq!(
            (p.mempool.mbufs, p.mempool.cache, p.mempool.data_room),
            (8191, 256, 2176)
        );
        assert_eq!(p.lcores.main, 0);
        assert_eq!(p.lcores.dataplane, DataplaneLcores::Count(1));
        assert_eq!(p.eal.memory, Memory::Hugepages);
        assert_eq!(p.eal.iova, Iova::Auto);
        assert_eq!(p.eal.effective_memory_mb(), None);
        assert!(p.driver.devargs.is_empty());
        assert_eq!(p.origin(), &Origin::Text("test".into()));
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    }

    #[test]
    fn the_readme_example_is_a_valid_profile_with_every_field() {
        let readme = include_str!("../README.md");
        let example = readme
            .split("## Example")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("README has an example");
        let p = Profile::from_toml_str(example, Origin::Text("README".into())).unwrap();
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
        assert_eq!(p.lcores.streams_per_lcore, Some(4));
        assert_eq!(p.eal.extra, ["--telemetry"]);
    }

    /// The README's schema table quotes the defaults of `defaults.rs`.
    #[test]
    fn the_readme_quotes_the_defaults() {
        let readme = include_str!("../README.md");
        let row = |field: &str| {
            readme
                .lines()
                .find(|l| l.starts_with(&format!("| {field} |")))
                .unwrap_or_else(|| panic!("no README row for {field}"))
        };
        let cases = [
            ("`mtu`", defaults::MTU.to_string()),
            (
                "`[queues]` `rx_descriptors`",
                defaults::RX_DESCRIPTORS.to_string(),
            ),
            (
                "`[queues]` `tx_descriptors`",
                defaults::TX_DESCRIPTORS.to_string(),
            ),
            ("`[queues]` `rx_queues`", defaults::RX_QUEUES.to_string()),
            ("`[queues]` `tx_queues`", defaults::TX_QUEUES.to_string()),
            ("`[queues]` `burst`", defaults::BURST.to_string()),
            ("`[mempool]` `mbufs`", defaults::MBUFS.to_string()),
            ("`[mempool]` `cache`", defaults::MEMPOOL_CACHE.to_string()),
            ("`[mempool]` `data_room`", defaults::DATA_ROOM.to_string()),
            ("`[lcores]` `main`", defaults::MAIN_LCORE.to_string()),
            (
                "`[lcores]` `dataplane`",
                defaults::DATAPLANE_LCORES.to_string(),
            ),
            (
                "`[eal]` `memory_mb`",
                defaults::NO_HUGE_MEMORY_MB.to_string(),
            ),
        ];
        for (field, default) in cases {
            let cells: Vec<&str> = row(field).split(" | ").collect();
            assert!(
                cells[2].starts_with(&format!("`{default}`")),
                "README default of {field} is {:?}, defaults.rs says {default}",
                cells[2]
            );
        }
    }

    #[test]
    fn no_huge_defaults_to_256_mib() {
        let p = Profile::from_toml_str(
            &format!("{MINIMAL}[eal]\nmemory = \"no-huge\"\n"),
            Origin::default(),
        )
        .unwrap();
        assert_eq!(p.eal.effective_memory_mb(), Some(256));
    }

    #[test]
    fn dataplane_is_a_count_or_a_list() {
        let list = Profile::from_toml_str(
            &format!("{MINIMAL}[lcores]\ndataplane = [1, 2]\n[queues]\ntx_queues = 2\n"),
            Origin::default(),
        )
        .unwrap();
        assert_eq!(list.lcores.dataplane, DataplaneLcores::List(vec![1, 2]));
        let err = Profile::from_toml_str(
            &format!("{MINIMAL}[lcores]\ndataplane = \"two\"\n"),
            Origin::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("expected a count of lcores (2) or a list of lcore ids ([1, 2])"),
            "{err}"
        );
    }

    #[test]
    fn a_typo_is_an_error_with_line_column_and_the_expected_fields() {
        let text = format!("{MINIMAL}[queues]\nrx_descriptor = 1024\n");
        let err = Profile::from_toml_str(&text, Origin::Text("test".into())).unwrap_err();
        assert!(matches!(err, ProfileError::Parse { .. }));
        assert_eq!(
            err.to_string(),
            "NIC profile test is not a valid profile: TOML parse error at line 6, column 1\n  \
             |\n6 | rx_descriptor = 1024\n  | ^^^^^^^^^^^^^\nunknown field `rx_descriptor`, \
             expected one of `rx_descriptors`, `tx_descriptors`, `rx_queues`, `tx_queues`, \
             `burst`\n"
        );
    }

    #[test]
    fn resolve_prefers_builtins_then_paths() {
        assert_eq!(
            Profile::resolve("ring").unwrap().origin(),
            &Origin::Builtin("ring")
        );
        let dir = std::env::temp_dir().join(format!("nic-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mine.toml");
        std::fs::write(&file, MINIMAL).unwrap();
        let p = Profile::resolve(file.to_str().unwrap()).unwrap();
        assert_eq!(p.origin(), &Origin::File(file.clone()));
        std::fs::remove_dir_all(&dir).unwrap();

        let unknown = Profile::resolve("connectx7").unwrap_err().to_string();
        assert_eq!(
            unknown,
            "there is no builtin NIC profile \"connectx7\"; builtin profiles: connectx6dx, \
             connectx5, e810, virtio, af_packet, af_packet_jumbo, af_xdp, memif, tap, ring, null; \
             or give the path of a profile file"
        );
        let missing = Profile::resolve("/nonexistent/nic.toml").unwrap_err();
        assert!(matches!(missing, ProfileError::Read { .. }));
        assert!(
            missing
                .to_string()
                .starts_with("reading NIC profile file /nonexistent/nic.toml failed: No such file"),
            "{missing}"
        );
    }

    #[test]
    fn minimum_mbufs_and_pool_bytes() {
        let p = Profile::builtin("af_packet").unwrap();
        // 2 × (1 × 1024 + 1 × 1024) + 2 × (32 + 256)
        assert_eq!(p.minimum_mbufs(2, 2), 4672);
        // 8191 × (64 + 2304)
        assert_eq!(p.mempool_bytes(), 8191 * 2368);
    }
}
