//! Per-NIC TOML profiles (PMD, devargs, queues, descriptors, MTU, offloads, core layout); built with the DPDK dataplane.
//!
//! This crate is intentionally empty until its issue lands: the workspace layout is fixed by
//! the architecture (`../shared/ARCHITECTURE.md` §2), and nothing here pretends to work yet.
