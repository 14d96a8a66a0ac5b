//! The `sockmap` engine's kernel half: a BPF `sk_skb` stream verdict (C, `bpf/sockmap.bpf.c`,
//! built by clang in `build.rs`, loaded with aya) that splices proxied TCP pairs inside the
//! kernel, and the user-space safety net around it ([`Splicer`]): no insert window, ordered
//! hand-over between user space and the kernel, drain-checked FINs, propagated resets, and a
//! backlog watchdog that pauses a direction whose reader stalls instead of letting the kernel
//! queue without bound. `docs/sockmap.md` explains the design and each kernel pitfall it handles.

mod shared;
mod splicer;
mod sys;

pub use splicer::{Meters, SockmapError, SpliceOptions, Spliced, Splicer};
