//! TCP termination on the DPDK ports: smoltcp interfaces over DPDK queue pairs ([`device`]),
//! one polling loop per lcore ([`lcore`]) that terminates each proxied connection on one port
//! and re-originates it on the other, and the byte relay between the two ([`relay`]).

pub mod device;
pub mod engine;
pub mod lcore;
pub mod placement;
pub mod preflight;
mod relay;
pub mod steering;

pub use device::{DeviceCounters, PortDevice};
pub use engine::{DpdkEngine, DpdkEngineError, DpdkOptions, SharedDpdkEngine};
pub use lcore::{Command, Lcore, LcoreStats, PortAddr, StackOptions, StreamId};
pub use placement::{Placed, PlacementError, Placer};
