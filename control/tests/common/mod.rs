//! In-process harness: a real s2cs gateway (real engine, real listeners) served by tonic on a
//! loopback port, and a client that attaches tokens.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use control::config::Config;
use control::proto;
use control::proto::control_client::ControlClient;
use control::server::{Secrets, build_gateway};
use control::service::{ControlService, Gateway};
use tonic::transport::Channel;

/// Hands every test its own port range so tests in one binary do not collide.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

pub fn free_range(len: u16) -> (u16, u16) {
    loop {
        let slot = NEXT_RANGE.fetch_add(1, Ordering::SeqCst);
        let base = 21000 + (std::process::id() % 40) as u16 * 1000 + slot * 40;
        assert!(base < 64000, "ran out of port ranges");
        let all_free = (base..base + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return (base, base + len - 1);
        }
    }
}

pub fn test_config(ports: u16) -> Config {
    let (a, b) = free_range(ports);
    Config {
        listener_ip: "127.0.0.1".parse().unwrap(),
        port_range: format!("{a}-{b}"),
        no_auth: true,
        hello_timeout: 5,
        hello_grace: 2,
        cores: Some(vec![0]),
        buffer_size: "256K".into(),
        ..Config::default()
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(config: Config) -> Self {
        let gateway = build_gateway(&config, Secrets::default()).expect("gateway builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let svc = ControlService::new(gateway.clone()).into_server();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            gateway,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self, token: Option<&str>) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Client {
            inner: ControlClient::new(channel),
            token: token.map(str::to_owned),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.gateway.release_all().await;
    }
}

/// A client that sends its token (raw) with every call.
#[derive(Clone)]
pub struct Client {
    pub inner: ControlClient<Channel>,
    pub token: Option<String>,
}

impl Client {
    fn wrap<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.parse().unwrap());
        }
        r
    }

    pub async fn req(
        &self,
        uid: &str,
        role: &str,
        num_conn: i32,
    ) -> Result<proto::Response, tonic::Status> {
        let msg = proto::Request {
            uid: uid.into(),
            role: role.into(),
            num_conn,
            rate: 10000,
        };
        self.inner
            .clone()
            .req(self.wrap(msg))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn hello(
        &self,
        uid: &str,
        role: &str,
        prod: &[&str],
    ) -> Result<proto::AppResponse, tonic::Status> {
        let msg = proto::Hello {
            uid: uid.into(),
            role: role.into(),
            prod_listeners: prod.iter().map(|s| s.to_string()).collect(),
        };
        self.inner
            .clone()
            .hello(self.wrap(msg))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn update_with(
        &self,
        msg: proto::UpdateTargets,
    ) -> Result<proto::Response, tonic::Status> {
        self.inner
            .clone()
            .update(self.wrap(msg))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn update(
        &self,
        uid: &str,
        role: &str,
        targets: &[&str],
    ) -> Result<proto::Response, tonic::Status> {
        self.update_with(proto::UpdateTargets {
            uid: uid.into(),
            role: role.into(),
            remote_listeners: targets.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
    }

    pub async fn release(&self, uid: &str) -> Result<proto::Response, tonic::Status> {
        self.inner
            .clone()
            .release(self.wrap(proto::Release { uid: uid.into() }))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn status(&self, uid: &str) -> Result<proto::SessionStatus, tonic::Status> {
        self.inner
            .clone()
            .status(self.wrap(proto::StatusRequest { uid: uid.into() }))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list(&self) -> Result<proto::SessionList, tonic::Status> {
        self.inner
            .clone()
            .list(self.wrap(proto::ListRequest {}))
            .await
            .map(tonic::Response::into_inner)
    }

    /// req and hello at once, the way s2uc does it.
    pub async fn open(&self, uid: &str, role: &str, n: i32, prod: &[&str]) -> proto::Response {
        let (r, h) = tokio::join!(self.req(uid, role, n), self.hello(uid, role, prod));
        h.expect("hello");
        r.expect("req")
    }
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s2-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Test bytes that differ by position and seed.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `send` and half-closes while reading `s` to EOF; returns what was read.
fn exchange(mut s: TcpStream, send: Vec<u8>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&send).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// A producer app: accepts one connection, sends `send`, reads to EOF, returns what it got.
pub fn producer(send: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || exchange(l.accept().unwrap().0, send));
    (addr, t)
}

/// A consumer app: connects, sends `send`, reads to EOF.
pub fn consumer(addr: &str, send: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange(s, send)
}
