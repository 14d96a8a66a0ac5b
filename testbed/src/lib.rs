//! Testbed for SciStream-RS.
//!
//! Two independent halves:
//!
//! * [`topology`] builds the paper's Fig. 5 topology (producer LAN, gateway
//!   node GN1, WAN, gateway node GN2, consumer LAN, plus a separate control
//!   network) out of Linux network namespaces and veth pairs. It needs root.
//! * [`traffic`] is a deterministic, verifiable bulk-transfer producer and
//!   consumer (blocking std sockets, one thread per direction) used by the
//!   end-to-end tests and the demo to prove that every byte crossed the proxy
//!   intact and on the right stream.
//!
//! [`wan`] emulates the WAN between GN1 and GN2 without `tc netem`: a
//! sans-io delay line (delay, rate cap, loss) driven by the `s2delay` binary
//! in a sixth namespace, and the paper's WAN profiles.
//!
//! [`units`] holds the byte-size parser the `s2testbed` CLI uses for `--bytes`.
//!
//! Nothing in this library prints to stdout; the one documented exception is
//! [`topology::TestbedGuard`]'s `Drop`, which reports a failed teardown on
//! stderr because `Drop` cannot return an error.

pub mod scenario;
pub mod topology;
pub mod traffic;
pub mod units;
pub mod wan;

pub use topology::{Host, TestbedError, TestbedGuard, Topology, require_root};
pub use traffic::{
    Pattern, TransferReport, bind_producer, expected_sha256, run_consumer, run_producer,
    serve_producer,
};
pub use units::{ParseSizeError, parse_size};
