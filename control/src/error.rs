//! Control-plane errors, mapped to gRPC status codes only at the service edge.

use tonic::{Code, Status};

/// Everything an RPC can fail with. Messages say what failed, with which value, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "authentication token is missing: send it in the 'authorization' metadata \
         (raw or 'Bearer <token>'); s2uc reads it from S2UC_TOKEN or --token-file"
    )]
    MissingToken,
    #[error("authentication token is invalid: {reason}")]
    InvalidToken { reason: String },
    #[error("token verification is unavailable: {reason}; retry later")]
    AuthUnavailable { reason: String },
    #[error(
        "identity '{identity}' is not allowed on this gateway; ask its operator to add it to \
         allowed_identities"
    )]
    NotAllowed { identity: String },
    #[error("no session with this uid for your identity (unknown, released, or not yours)")]
    UnknownSession,
    #[error("a session with this uid already exists; use a fresh uid per session")]
    SessionExists,
    #[error("{field} is invalid: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("num_conn {got} is out of range: it must be between 1 and {max} on this gateway")]
    NumConn { got: i64, max: usize },
    #[error(
        "port pool {range} cannot serve {need} listeners ({free} free, {occupied} taken by other \
         programs); release sessions, or widen --port_range"
    )]
    PoolExhausted {
        range: String,
        need: usize,
        free: usize,
        occupied: usize,
    },
    #[error("too many sessions ({max}); release some or raise max_sessions")]
    TooManySessions { max: usize },
    #[error(
        "no hello for this session within {secs} s; start the app controller (appctrl) while the \
         request waits, or raise --hello_timeout; the session was released"
    )]
    HelloTimeout { secs: u64 },
    #[error("the session was released while this request waited")]
    Released,
    #[error("{what} cannot change on a running session; release it and request a new one")]
    Immutable { what: &'static str },
    #[error("the data path refused the session: {0}")]
    Engine(#[from] dataplane::EngineError),
    #[error("setting up the WAN leg failed: {0}")]
    WanTls(#[from] dataplane::wan_tls::WanTlsError),
}

impl ControlError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::MissingToken | Self::InvalidToken { .. } => Code::Unauthenticated,
            Self::AuthUnavailable { .. } => Code::Unavailable,
            Self::NotAllowed { .. } => Code::PermissionDenied,
            Self::UnknownSession | Self::Released => Code::NotFound,
            Self::SessionExists => Code::AlreadyExists,
            Self::InvalidArgument { .. } | Self::NumConn { .. } => Code::InvalidArgument,
            Self::PoolExhausted { .. } | Self::TooManySessions { .. } => Code::ResourceExhausted,
            Self::HelloTimeout { .. } => Code::DeadlineExceeded,
            Self::Immutable { .. } => Code::FailedPrecondition,
            Self::Engine(dataplane::EngineError::WanTlsUnsupported { .. }) => {
                Code::FailedPrecondition
            }
            Self::Engine(_) | Self::WanTls(_) => Code::Internal,
        }
    }
}

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}
