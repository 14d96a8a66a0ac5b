//! Hugepage reservation, mounting and verification through one syscall seam; built with the DPDK dataplane.
//!
//! This crate is intentionally empty until its issue lands: the workspace layout is fixed by
//! the architecture (`../shared/ARCHITECTURE.md` §2), and nothing here pretends to work yet.
