//! SciStream-RS control plane.
//!
//! - [`service`]: the `scistream.Control` gRPC service (wire-compatible with upstream SciStream,
//!   plus the additive `status`/`list` RPCs), driven by tonic.
//! - [`session`]: sessions, their state (waiting for hello → ready → forwarding) and registry.
//! - [`ports`]: the listener port pool (`--port_range`), which binds ports as it hands them out.
//! - [`auth`]: token verifiers (static token file, OAuth2 introspection, explicit no-auth) and
//!   the identity allow-list.
//! - [`dpdk`]: the `dpdk` engine's configuration and checks (or, built without the `dpdk`
//!   feature, the error that says so).
//! - [`server`]: wiring for the `s2cs` daemon: config, TLS, engine choice, shutdown.
//! - [`client`]: the gRPC client side shared by `s2uc` and `appctrl`.
//! - [`cli`]: the three command lines; the binaries in `src/bin` only call into it.

pub mod addr;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod doctor;
pub mod dpdk;
pub mod error;
pub mod metrics;
pub mod ports;
pub mod secret;
pub mod server;
pub mod service;
pub mod session;

/// Generated protobuf and gRPC code for `proto/scistream.proto`.
#[allow(
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    reason = "generated code"
)]
pub mod proto {
    tonic::include_proto!("scistream");
}

/// The version printed by `--version`, as upstream prints `s2cs, version: X`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
