//! The `scistream.Control` service: the gateway's behaviour per RPC, and the tonic glue.
//!
//! Every RPC authenticates before it looks at the uid. `req` binds the session's listeners and
//! waits for the hello asynchronously (no worker is held; a client that goes away releases the
//! session). `update` is idempotent and re-targetable. `release` stops the data path, closes the
//! listeners and returns the ports before it answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::{AllowList, Engine, ProxySpec, WanSecurity, WanSide, WanTls};
use ring::digest;
use tonic::{Request, Response, Status};

use crate::addr::{Endpoint, format_host_port};
use crate::auth::{Authenticator, Identity};
use crate::error::ControlError;
use crate::ports::PortPool;
use crate::proto;
use crate::secret;
use crate::session::{DataPath, HelloState, Registry, Role, Session};

/// Gateway-wide settings of the control service.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Address the data listeners bind to.
    pub listener_ip: IpAddr,
    /// Host put in the listener strings handed to clients (NAT / public address).
    pub advertise_host: String,
    pub hello_timeout: Duration,
    /// How long a hello that arrives before its req waits for it.
    pub hello_grace: Duration,
    pub max_num_conn: usize,
    pub max_sessions: usize,
    /// The operator's explicit choice to run the WAN leg unencrypted.
    pub wan_plaintext: bool,
    /// Sources allowed on listeners when a session names none.
    pub default_allow: AllowList,
}

/// The gateway: sessions, ports, the data-path engine and the auth policy.
pub struct Gateway {
    pub settings: GatewaySettings,
    pub auth: Authenticator,
    pub registry: Registry,
    pub pool: PortPool,
    pub engine: Arc<dyn Engine>,
}

impl Gateway {
    fn advertised(&self, port: u16) -> String {
        match self.settings.advertise_host.parse::<IpAddr>() {
            Ok(ip) => format_host_port(ip, port),
            Err(_) => format!("{}:{port}", self.settings.advertise_host),
        }
    }

    /// `req`: allocate and bind `num_conn` listeners, then wait for the session's hello.
    pub async fn req(
        self: &Arc<Self>,
        who: &Identity,
        r: proto::Request,
    ) -> Result<proto::Response, ControlError> {
        check_uid(&r.uid)?;
        let role: Role = r.role.parse()?;
        let max = self.settings.max_num_conn;
        let num_conn = usize::try_from(r.num_conn)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(ControlError::NumConn {
                got: r.num_conn.into(),
                max,
            })?;
        if self.registry.len() >= self.settings.max_sessions {
            return Err(ControlError::TooManySessions {
                max: self.settings.max_sessions,
            });
        }
        let leases = self.pool.allocate(self.settings.listener_ip, num_conn)?;
        let ports: Vec<u16> = leases.iter().map(|l| l.port).collect();
        let session = Arc::new(Session {
            tag: secret::tag(&r.uid),
            uid: r.uid,
            owner: who.clone(),
            role,
            num_conn,
            rate: r.rate,
            created: Instant::now(),
            listeners: ports.iter().map(|&p| self.advertised(p)).collect(),
            ports,
            hello: tokio::sync::watch::channel(HelloState::WaitingForHello).0,
            data: tokio::sync::Mutex::new(DataPath {
                leases,
                ..DataPath::default()
            }),
        });
        if let Err(e) = self.registry.insert(session.clone()) {
            self.pool.release(&session.ports);
            return Err(e);
        }
        tracing::info!(session = %session.tag, owner = %who, role = role.as_wire(), num_conn,
            listeners = ?session.listeners, "session requested; waiting for hello");

        // If this future is dropped (the client gave up), the guard releases the session.
        let mut guard = ReleaseOnDrop {
            gateway: self.clone(),
            session: Some(session.clone()),
        };
        let mut hello = session.hello.subscribe();
        let waited = tokio::time::timeout(self.settings.hello_timeout, async {
            hello
                .wait_for(|h| *h != HelloState::WaitingForHello)
                .await
                .map(|s| s.clone())
        })
        .await;
        let state = match waited {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => HelloState::Released,
            Err(_) => {
                guard.session = None;
                self.teardown(&session).await;
                tracing::warn!(session = %session.tag, "no hello in time; session released");
                return Err(ControlError::HelloTimeout {
                    secs: self.settings.hello_timeout.as_secs(),
                });
            }
        };
        guard.session = None;
        match state {
            HelloState::Received { prod_listeners } => Ok(proto::Response {
                listeners: session.listeners.clone(),
                prod_listeners,
                engine: self.engine.kind().name().into(),
                wan_security: self.wan_security_name().into(),
            }),
            _ => Err(ControlError::Released),
        }
    }

    /// `hello`: the app controller registers the session's app side.
    pub async fn hello(
        &self,
        who: &Identity,
        h: proto::Hello,
    ) -> Result<proto::AppResponse, ControlError> {
        check_uid(&h.uid)?;
        let session = self
            .registry
            .wait_for(&h.uid, who, self.settings.hello_grace)
            .await?;
        let is_prod = h.role.trim().eq_ignore_ascii_case("PROD");
        if is_prod {
            for l in &h.prod_listeners {
                Endpoint::parse(l)
                    .map_err(|e| ControlError::invalid("prod_listeners", e.to_string()))?;
            }
        }
        let prod_listeners = if is_prod {
            h.prod_listeners
        } else {
            Vec::new()
        };
        let accepted = session.hello.send_if_modified(|state| match state {
            HelloState::Released => false,
            _ => {
                *state = HelloState::Received { prod_listeners };
                true
            }
        });
        if !accepted {
            return Err(ControlError::UnknownSession);
        }
        tracing::info!(session = %session.tag, role = %h.role, "hello received");
        Ok(if is_prod {
            proto::AppResponse {
                message: "Sending Prod listeners...".into(),
                listeners: Vec::new(),
            }
        } else {
            proto::AppResponse {
                message: "Sending listeners...".into(),
                listeners: session.listeners.clone(),
            }
        })
    }

    /// `update`: point the session's streams at targets (cycled to `num_conn`) and start or
    /// re-target the data path.
    pub async fn update(
        &self,
        who: &Identity,
        u: proto::UpdateTargets,
    ) -> Result<proto::Response, ControlError> {
        check_uid(&u.uid)?;
        let session = self.registry.get(&u.uid, who)?;
        if !u.role.trim().is_empty() {
            let role: Role = u.role.parse()?;
            if role != session.role {
                return Err(ControlError::invalid(
                    "role",
                    format!(
                        "the session was requested as {} but the update says {}",
                        session.role.as_wire(),
                        role.as_wire()
                    ),
                ));
            }
        }
        if u.remote_listeners.is_empty() {
            return Err(ControlError::invalid(
                "remote_listeners",
                "no targets given; send at least one host:port",
            ));
        }
        let mut endpoints = Vec::with_capacity(u.remote_listeners.len());
        for l in &u.remote_listeners {
            let e = Endpoint::parse(l)
                .map_err(|e| ControlError::invalid("remote_listeners", e.to_string()))?;
            let addr = e
                .resolve()
                .await
                .map_err(|e| ControlError::invalid("remote_listeners", e.to_string()))?;
            endpoints.push((e.to_string(), addr));
        }
        // Cycle the targets to exactly num_conn, as upstream does.
        let (targets, resolved): (Vec<String>, Vec<SocketAddr>) = (0..session.num_conn)
            .map(|i| endpoints[i % endpoints.len()].clone())
            .unzip();
        let allow = if u.allowed_sources.is_empty() {
            self.settings.default_allow.clone()
        } else {
            AllowList::parse(&u.allowed_sources)
                .map_err(|e| ControlError::invalid("allowed_sources", e.to_string()))?
        };
        let secret = if u.wan_key.is_empty() {
            session.uid.as_bytes().to_vec()
        } else {
            hex::decode(u.wan_key.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or_else(|| {
                    ControlError::invalid("wan_key", "must be 64 hex digits (32 bytes)")
                })?
        };
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest::digest(&digest::SHA256, &secret).as_ref());

        let mut data = session.data.lock().await;
        if data.released {
            return Err(ControlError::UnknownSession);
        }
        match &data.proxy {
            Some(proxy) => {
                if !self.settings.wan_plaintext && data.wan_fingerprint != Some(fingerprint) {
                    return Err(ControlError::Immutable {
                        what: "the WAN key",
                    });
                }
                if data.allow.as_ref() != Some(&allow) {
                    return Err(ControlError::Immutable {
                        what: "the source allow-list",
                    });
                }
                proxy.set_targets(&resolved)?;
                tracing::info!(session = %session.tag, ?targets, "session re-targeted");
            }
            None => {
                let security = if self.settings.wan_plaintext {
                    WanSecurity::Plaintext
                } else {
                    WanSecurity::Tls(WanTls::from_secret(&secret)?)
                };
                let wan_side = match session.role {
                    Role::Prod => WanSide::Listener,
                    Role::Cons => WanSide::Target,
                };
                let leases = std::mem::take(&mut data.leases);
                let spec = ProxySpec {
                    tag: session.tag.clone(),
                    uid: session.uid.clone(),
                    listeners: leases.into_iter().map(|l| l.listener).collect(),
                    targets: resolved.clone(),
                    wan_side,
                    security,
                    allow: allow.clone(),
                };
                data.proxy = Some(self.engine.start(spec)?);
                data.wan_fingerprint = Some(fingerprint);
                data.allow = Some(allow);
                data.wan_security = self.wan_security_name();
                tracing::info!(session = %session.tag, engine = self.engine.kind().name(),
                    wan = self.wan_security_name(), ?targets, "data path started");
            }
        }
        data.targets = targets.clone();
        data.resolved = resolved;
        Ok(proto::Response {
            listeners: session.listeners.clone(),
            prod_listeners: targets,
            engine: self.engine.kind().name().into(),
            wan_security: self.wan_security_name().into(),
        })
    }

    /// `release`: stop the data path, close listeners, return the ports.
    pub async fn release(
        &self,
        who: &Identity,
        r: proto::Release,
    ) -> Result<proto::Response, ControlError> {
        check_uid(&r.uid)?;
        let session = self.registry.remove(&r.uid, who)?;
        self.teardown(&session).await;
        Ok(proto::Response::default())
    }

    pub async fn status(
        &self,
        who: &Identity,
        r: proto::StatusRequest,
    ) -> Result<proto::SessionStatus, ControlError> {
        check_uid(&r.uid)?;
        let session = self.registry.get(&r.uid, who)?;
        Ok(self.session_status(&session).await)
    }

    pub async fn list(&self, who: &Identity) -> proto::SessionList {
        let mut sessions = Vec::new();
        for s in self.registry.all() {
            if &s.owner == who {
                sessions.push(self.session_status(&s).await);
            }
        }
        sessions.sort_by(|a, b| b.age_seconds.cmp(&a.age_seconds).then(a.tag.cmp(&b.tag)));
        proto::SessionList { sessions }
    }

    async fn session_status(&self, s: &Session) -> proto::SessionStatus {
        let data = s.data.lock().await;
        let stats = data.proxy.as_ref().map(|p| p.stats()).unwrap_or_default();
        let streams = (0..s.num_conn)
            .map(|i| {
                let st = stats.get(i).cloned().unwrap_or_default();
                proto::StreamStatus {
                    index: i as u32,
                    listener: s.listeners[i].clone(),
                    target: data.targets.get(i).cloned().unwrap_or_default(),
                    bytes_to_target: st.bytes_to_target,
                    bytes_from_target: st.bytes_from_target,
                    active_connections: st.active_connections,
                    total_connections: st.total_connections,
                    rejected_connections: st.rejected_connections,
                    last_error: st.last_error,
                    kernel_backlog: st.kernel_backlog,
                    pauses: st.pauses,
                }
            })
            .collect();
        proto::SessionStatus {
            tag: s.tag.clone(),
            role: s.role.as_wire().into(),
            num_conn: s.num_conn as i32,
            state: s.state_name(&data).into(),
            listeners: s.listeners.clone(),
            targets: data.targets.clone(),
            engine: self.engine.kind().name().into(),
            wan_security: if data.proxy.is_some() {
                data.wan_security.into()
            } else {
                String::new()
            },
            age_seconds: s.created.elapsed().as_secs(),
            streams,
        }
    }

    /// Stops a session's data path and returns its ports. The session must already be out of
    /// the registry (or be removed here).
    pub async fn teardown(&self, session: &Arc<Session>) {
        self.registry.remove_exact(session);
        session.hello.send_replace(HelloState::Released);
        let mut data = session.data.lock().await;
        data.released = true;
        if let Some(proxy) = data.proxy.take() {
            proxy.release().await;
        }
        data.leases.clear();
        drop(data);
        self.pool.release(&session.ports);
        tracing::info!(session = %session.tag, ports = ?session.ports, "session released");
    }

    /// Releases every session (daemon shutdown).
    pub async fn release_all(&self) {
        for s in self.registry.all() {
            self.teardown(&s).await;
        }
    }

    fn wan_security_name(&self) -> &'static str {
        if self.settings.wan_plaintext {
            "plaintext"
        } else {
            "tls"
        }
    }
}

/// Releases a session whose `req` was abandoned before its hello arrived.
struct ReleaseOnDrop {
    gateway: Arc<Gateway>,
    session: Option<Arc<Session>>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let gateway = self.gateway.clone();
            tracing::warn!(session = %session.tag, "request abandoned by the client; releasing");
            tokio::spawn(async move { gateway.teardown(&session).await });
        }
    }
}

fn check_uid(uid: &str) -> Result<(), ControlError> {
    if uid.trim().is_empty() {
        return Err(ControlError::invalid(
            "uid",
            "empty; every RPC needs the session uid",
        ));
    }
    if uid.len() > 256 || uid.chars().any(char::is_control) {
        return Err(ControlError::invalid(
            "uid",
            "must be at most 256 printable characters",
        ));
    }
    Ok(())
}

/// The tonic service around a [`Gateway`].
#[derive(Clone)]
pub struct ControlService {
    gateway: Arc<Gateway>,
}

impl ControlService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    pub fn into_server(self) -> proto::control_server::ControlServer<Self> {
        proto::control_server::ControlServer::new(self)
    }

    async fn who<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        self.gateway
            .auth
            .authenticate(request.metadata())
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "refused an unauthenticated call");
                Status::from(e)
            })
    }
}

fn answer<T>(rpc: &str, r: Result<T, ControlError>) -> Result<Response<T>, Status> {
    match r {
        Ok(v) => Ok(Response::new(v)),
        Err(e) => {
            tracing::info!(rpc, error = %e, "call failed");
            Err(e.into())
        }
    }
}

#[tonic::async_trait]
impl proto::control_server::Control for ControlService {
    async fn req(
        &self,
        request: Request<proto::Request>,
    ) -> Result<Response<proto::Response>, Status> {
        let who = self.who(&request).await?;
        answer("req", self.gateway.req(&who, request.into_inner()).await)
    }

    async fn update(
        &self,
        request: Request<proto::UpdateTargets>,
    ) -> Result<Response<proto::Response>, Status> {
        let who = self.who(&request).await?;
        answer(
            "update",
            self.gateway.update(&who, request.into_inner()).await,
        )
    }

    async fn release(
        &self,
        request: Request<proto::Release>,
    ) -> Result<Response<proto::Response>, Status> {
        let who = self.who(&request).await?;
        answer(
            "release",
            self.gateway.release(&who, request.into_inner()).await,
        )
    }

    async fn hello(
        &self,
        request: Request<proto::Hello>,
    ) -> Result<Response<proto::AppResponse>, Status> {
        let who = self.who(&request).await?;
        answer(
            "hello",
            self.gateway.hello(&who, request.into_inner()).await,
        )
    }

    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::SessionStatus>, Status> {
        let who = self.who(&request).await?;
        answer(
            "status",
            self.gateway.status(&who, request.into_inner()).await,
        )
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::SessionList>, Status> {
        let who = self.who(&request).await?;
        Ok(Response::new(self.gateway.list(&who).await))
    }
}
