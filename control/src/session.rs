//! Sessions and their registry.
//!
//! A session is created by `req` (listeners bound, state `WaitingForHello`), becomes `Ready`
//! when its hello arrives, `Forwarding` once `update` gave it targets and the engine runs, and
//! disappears on `release` (or when the hello never comes). Each session has its own state and
//! its own response, so concurrent sessions never see each other's answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dataplane::{AllowList, Proxy};
use tokio::sync::{Notify, watch};

use crate::auth::Identity;
use crate::error::ControlError;
use crate::ports::Lease;

/// Which side of the stream a gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Producer facility: inbound proxy, remote gateway → local producer app.
    Prod,
    /// Consumer facility: outbound proxy, local consumer app → remote gateway.
    Cons,
}

impl Role {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Prod => "PROD",
            Self::Cons => "CONS",
        }
    }
}

impl FromStr for Role {
    type Err = ControlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PROD" => Ok(Self::Prod),
            "CONS" => Ok(Self::Cons),
            other => Err(ControlError::invalid(
                "role",
                format!("'{other}' is neither PROD nor CONS"),
            )),
        }
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloState {
    WaitingForHello,
    /// The hello came; for a PROD hello, the app's listening endpoints.
    Received {
        prod_listeners: Vec<String>,
    },
    Released,
}

/// One session.
pub struct Session {
    pub uid: String,
    pub tag: String,
    pub owner: Identity,
    pub role: Role,
    pub num_conn: usize,
    pub rate: i32,
    pub created: Instant,
    pub ports: Vec<u16>,
    /// `host:port` strings handed to clients (the advertised address).
    pub listeners: Vec<String>,
    pub hello: watch::Sender<HelloState>,
    pub data: tokio::sync::Mutex<DataPath>,
}

/// The mutable data-path part of a session, behind one async lock so that `update` and
/// `release` of the same session are serialised.
#[derive(Default)]
pub struct DataPath {
    /// Bound listeners until the engine takes them.
    pub leases: Vec<Lease>,
    pub proxy: Option<Box<dyn Proxy>>,
    pub targets: Vec<String>,
    pub resolved: Vec<SocketAddr>,
    /// SHA-256 of the WAN secret in use, to refuse a silent re-key.
    pub wan_fingerprint: Option<[u8; 32]>,
    pub allow: Option<AllowList>,
    pub wan_security: &'static str,
    pub released: bool,
}

impl Session {
    pub fn state_name(&self, data: &DataPath) -> &'static str {
        match (&*self.hello.borrow(), data) {
            (HelloState::Released, _) | (_, DataPath { released: true, .. }) => "released",
            (_, DataPath { proxy: Some(_), .. }) => "forwarding",
            (HelloState::WaitingForHello, _) => "waiting-for-hello",
            (HelloState::Received { .. }, _) => "ready",
        }
    }
}

/// All sessions of this gateway, by uid.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Woken whenever a session is added (a hello may be waiting for it).
    added: Notify,
}

impl Registry {
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session; fails if the uid is taken.
    pub fn insert(&self, session: Arc<Session>) -> Result<(), ControlError> {
        {
            let mut map = self.lock();
            if map.contains_key(&session.uid) {
                return Err(ControlError::SessionExists);
            }
            map.insert(session.uid.clone(), session);
        }
        self.added.notify_waiters();
        Ok(())
    }

    /// The caller's session. Someone else's session is reported exactly like an unknown one.
    pub fn get(&self, uid: &str, who: &Identity) -> Result<Arc<Session>, ControlError> {
        match self.lock().get(uid) {
            Some(s) if &s.owner == who => Ok(s.clone()),
            _ => Err(ControlError::UnknownSession),
        }
    }

    /// Waits up to `grace` for the caller's session to appear (a hello that beat its req).
    pub async fn wait_for(
        &self,
        uid: &str,
        who: &Identity,
        grace: std::time::Duration,
    ) -> Result<Arc<Session>, ControlError> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            match self.get(uid, who) {
                Ok(s) => return Ok(s),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return self.get(uid, who);
            }
        }
    }

    /// Removes the caller's session.
    pub fn remove(&self, uid: &str, who: &Identity) -> Result<Arc<Session>, ControlError> {
        let mut map = self.lock();
        match map.get(uid) {
            Some(s) if &s.owner == who => Ok(map.remove(uid).expect("present: just looked up")),
            _ => Err(ControlError::UnknownSession),
        }
    }

    /// Removes a session regardless of owner (timeouts, shutdown), if it is still there.
    pub fn remove_exact(&self, session: &Arc<Session>) -> bool {
        let mut map = self.lock();
        match map.get(&session.uid) {
            Some(s) if Arc::ptr_eq(s, session) => map.remove(&session.uid).is_some(),
            _ => false,
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}
