//! Per-NIC profiles for the DPDK dataplane: which PMD drives a NIC model and with which
//! devargs, queues, descriptors, MTU, offloads, RSS, mempool, lcore layout and EAL memory
//! options, as TOML files with validation and documented defaults.
//!
//! This crate is pure data and rules: it does not link DPDK. The DPDK layer (in `dataplane`)
//! takes what this crate derives and makes the calls.
//!
//! How it is driven, at s2cs start:
//!
//! 1. [`Profile::resolve`] loads a builtin profile by name (`connectx6dx`, `af_packet`, …,
//!    see [`builtin_names`]) or a file by path, and validates it; log
//!    [`Profile::warnings`].
//! 2. The ports ([`PortSpec`]: `lan`/`wan`, a PCI address or per-port devargs, addresses)
//!    come from the s2cs config, the lcores ([`LcoreLayout`]) from `--cores` or the
//!    profile's recommendation ([`LcoreLayout::from_profile`]).
//! 3. [`validate_deployment`] checks that they fit the profile (log its warnings);
//!    [`eal_args`] gives `argv` for `rte_eal_init`, [`device_names`] the names to look the
//!    ports up by, and [`port_config()`] the queue, offload, RSS and mempool settings of
//!    every port ([`PortConfig`]).
//!
//! ```
//! use nic_profiles::{LcoreLayout, PortSpec, Profile, eal_args, port_config};
//!
//! let profile = Profile::resolve("af_packet")?;
//! let ports = vec![
//!     PortSpec::vdev("lan", "iface=gn1-lan".parse().unwrap(), "172.16.1.1/24")?,
//!     PortSpec::vdev("wan", "iface=gn1-wan".parse().unwrap(), "198.51.100.10/24")?,
//! ];
//! let args = eal_args(&profile, &ports, &LcoreLayout::new(0, vec![1]), &[])?;
//! assert_eq!(args[..6], ["scistream", "-l", "0,1", "--main-lcore", "0", "--no-pci"]);
//! assert_eq!(port_config(&profile).mtu, 1500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The TOML schema (every field, its unit, default and range) is in this crate's
//! `README.md`; the defaults are in [`defaults`], DPDK's limits in [`limits`], and what is
//! known about each PMD family (devargs, offloads, MTU, descriptors) in [`pmd`].

pub mod defaults;
pub mod devargs;
pub mod eal;
pub mod error;
pub mod lcores;
pub mod limits;
pub mod pmd;
pub mod port;
pub mod port_config;
pub mod profile;

mod builtin;
mod validate;

pub use builtin::builtin_names;
pub use devargs::{DevargValue, Devargs};
pub use eal::{device_names, eal_args};
pub use error::{Origin, ProfileError, Violation, Warning};
pub use lcores::LcoreLayout;
pub use port::{MacAddr, PciAddress, PortDevice, PortSpec};
pub use port_config::{
    Flag, FlagSet, MempoolConfig, PortConfig, RssConfig, RssHash, RssHashes, RxOffload, RxOffloads,
    TxOffload, TxOffloads, port_config,
};
pub use profile::{
    Bus, DataplaneLcores, Driver, Eal, Iova, Lcores, Memory, Mempool, Offloads, Profile, Queues,
    Rss,
};
pub use validate::validate_deployment;
