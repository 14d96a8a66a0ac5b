//! WAN emulation without `tc netem`: a delay line between GN1 and GN2.
//!
//! This kernel has no netem, so the testbed emulates the WAN in user space:
//! a sixth namespace `{prefix}-wan` sits between `gn1:wan0` and `gn2:wan0`
//! (veths `a` and `b`), and `s2delay` forwards every Ethernet frame between
//! `a` and `b` after a one-way delay, optionally under a rate cap and with
//! random loss. See `docs/wan-emulation.md`.
//!
//! * [`line`]: the sans-io core, one [`DelayLine`] per direction.
//! * [`profile`]: the paper's WAN setups ([`WanProfile`]) and the
//!   [`WanLink`] a [`Topology`](crate::Topology) can emulate.
//! * [`driver`]: the `s2delay` threads around two lines.
//! * [`sys`]: the syscall seam (packet sockets, `ppoll`, signals); the only
//!   `unsafe` code of the emulation.

pub mod check;
pub mod driver;
pub mod line;
pub mod profile;
pub mod sys;

pub use driver::{DelayConfig, DelayError, DelayStats, DirectionStats};
pub use line::{
    Counters, DelayLine, LineConfig, LineConfigError, MAX_FRAME_BYTES, MIN_LIMIT_BYTES, Poll,
    Verdict, queue_limit,
};
pub use profile::{ParseRateError, UnknownProfile, WanLink, WanProfile, format_rate, parse_rate};
