//! The safe layer over DPDK (`dpdk-sys`): the only place in the dataplane with DPDK `unsafe`.
//!
//! - [`Eal`]: once per process, initialised off the caller's thread; work runs on pinned worker
//!   lcores through [`Eal::launch`].
//! - [`Mempool`] and [`Mbuf`] (frees itself on drop).
//! - [`Port`], configured from a [`PortSetup`] (derived from a NIC profile) and masked against
//!   the device's capabilities; its queues are handed out once as [`RxQueue`] / [`TxQueue`].
//!
//! Errors keep the failing call, its argument and DPDK's message ([`DpdkError`]).

mod eal;
mod error;
mod flags;
pub mod flow;
mod mbuf;
mod mempool;
mod port;

/// Where this build's shared DPDK loads PMD plugins from (empty if none was found at build time).
pub use dpdk_sys::PMD_DIR;
pub(crate) use eal::missing_pmds;
pub use eal::{Eal, LcoreJob, probe_vdev, remove_vdev, tsc, tsc_hz, version};
pub use error::DpdkError;
pub use mbuf::{Mbuf, Segments};
pub use mempool::Mempool;
pub use port::{Port, PortCounters, PortInfo, PortSetup, RxQueue, TxQueue, port_names};
