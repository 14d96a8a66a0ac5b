//! eBPF sockmap engine (in-kernel TCP splicing) with its safety net; built in a later issue.
//!
//! This crate is intentionally empty until its issue lands: the workspace layout is fixed by
//! the architecture (`../shared/ARCHITECTURE.md` §2), and nothing here pretends to work yet.
