//! The upstream reference tests (tests/test_s2cs.py, tests/test_s2ds.py) re-expressed against
//! our server, plus the behaviour upstream lacks: per-session responses, idempotent update,
//! ports returned, no uid oracle, structured error codes.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, test_config};
use tonic::Code;

#[tokio::test]
async fn req_without_hello_times_out_and_releases_everything() {
    let mut cfg = test_config(5);
    cfg.hello_timeout = 1;
    let h = Harness::start(cfg).await;
    let c = h.client(None).await;
    let started = Instant::now();
    let err = c.req("uid-timeout", "PROD", 3).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("no hello"), "{}", err.message());
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(h.gateway.registry.is_empty());
    assert_eq!(h.gateway.pool.in_use(), 0);
    // The ports really are free again: the next session gets the first port of the range.
    let r = c.open("uid-next", "PROD", 3, &["127.0.0.1:9"]).await;
    assert_eq!(r.listeners.len(), 3);
    h.stop().await;
}

#[tokio::test]
async fn req_and_hello_return_listeners_and_the_hello_targets() {
    let h = Harness::start(test_config(5)).await;
    let c = h.client(None).await;
    let r = c
        .open("uid-a", "PROD", 5, &["127.0.0.1:5074", "127.0.0.1:5075"])
        .await;
    assert_eq!(r.listeners.len(), 5);
    assert!(r.listeners.iter().all(|l| l.starts_with("127.0.0.1:")));
    assert_eq!(r.prod_listeners, vec!["127.0.0.1:5074", "127.0.0.1:5075"]);
    assert_eq!(r.engine, "copy");
    let hello = c.hello("uid-a", "PROD", &["127.0.0.1:1"]).await.unwrap();
    assert_eq!(hello.message, "Sending Prod listeners...");
    h.stop().await;
}

#[tokio::test]
async fn cons_hello_answers_with_the_listeners() {
    let h = Harness::start(test_config(3)).await;
    let c = h.client(None).await;
    let (r, hello) = tokio::join!(c.req("uid-c", "CONS", 2), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.hello("uid-c", "CONS", &[]).await
    });
    let (r, hello) = (r.unwrap(), hello.unwrap());
    assert_eq!(hello.message, "Sending listeners...");
    assert_eq!(hello.listeners, r.listeners);
    h.stop().await;
}

#[tokio::test]
async fn hello_before_req_is_tolerated_within_the_grace_period() {
    let h = Harness::start(test_config(3)).await;
    let c = h.client(None).await;
    let (hello, r) = tokio::join!(c.hello("uid-early", "PROD", &["127.0.0.1:7000"]), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.req("uid-early", "PROD", 1).await
    });
    hello.unwrap();
    assert_eq!(r.unwrap().prod_listeners, vec!["127.0.0.1:7000"]);
    h.stop().await;
}

#[tokio::test]
async fn hello_without_req_is_not_found_after_the_grace_period() {
    let mut cfg = test_config(1);
    cfg.hello_grace = 1;
    let h = Harness::start(cfg).await;
    let c = h.client(None).await;
    let err = c.hello("uid-never", "PROD", &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    h.stop().await;
}

#[tokio::test]
async fn update_cycles_targets_is_idempotent_and_retargetable() {
    let h = Harness::start(test_config(3)).await;
    let c = h.client(None).await;
    c.open("uid-u", "PROD", 3, &["127.0.0.1:1"]).await;
    let r = c
        .update("uid-u", "PROD", &["127.0.0.1:8000", "127.0.0.1:8001"])
        .await
        .unwrap();
    assert_eq!(
        r.prod_listeners,
        vec!["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8000"]
    );
    assert_eq!(r.listeners.len(), 3);
    assert_eq!(r.wan_security, "tls");
    // Same update again: same answer, still one data path.
    let again = c
        .update("uid-u", "PROD", &["127.0.0.1:8000", "127.0.0.1:8001"])
        .await
        .unwrap();
    assert_eq!(again, r);
    // Re-target.
    let moved = c.update("uid-u", "", &["[::1]:9000"]).await.unwrap();
    assert_eq!(moved.prod_listeners, vec!["[::1]:9000"; 3]);
    let st = c.status("uid-u").await.unwrap();
    assert_eq!(st.state, "forwarding");
    assert_eq!(st.targets, vec!["[::1]:9000"; 3]);
    // Role must match the session.
    let err = c
        .update("uid-u", "CONS", &["127.0.0.1:1"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // The WAN key cannot change under a running session.
    let err = c
        .update_with(control::proto::UpdateTargets {
            uid: "uid-u".into(),
            remote_listeners: vec!["127.0.0.1:1".into()],
            wan_key: "ab".repeat(32),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    h.stop().await;
}

#[tokio::test]
async fn release_removes_the_session_and_returns_its_ports() {
    let h = Harness::start(test_config(2)).await;
    let c = h.client(None).await;
    let first = c.open("uid-r", "PROD", 2, &["127.0.0.1:1"]).await;
    c.update("uid-r", "PROD", &["127.0.0.1:1"]).await.unwrap();
    c.release("uid-r").await.unwrap();
    assert_eq!(c.status("uid-r").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(c.release("uid-r").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(h.gateway.pool.in_use(), 0);
    // The whole (2-port) range is usable again, with the same ports.
    let second = c.open("uid-r2", "PROD", 2, &["127.0.0.1:1"]).await;
    assert_eq!(first.listeners, second.listeners);
    h.stop().await;
}

#[tokio::test]
async fn concurrent_sessions_get_their_own_ports_and_answers() {
    let h = Harness::start(test_config(40)).await;
    let c = h.client(None).await;
    let opens = (0..8).map(|i| {
        let c = c.clone();
        async move {
            let target = format!("127.0.0.1:{}", 7000 + i);
            let r = c
                .open(&format!("uid-cc-{i}"), "PROD", 4, &[target.as_str()])
                .await;
            (target, r)
        }
    });
    let results = join_vec(opens.map(Box::pin).collect()).await;
    let mut ports = std::collections::HashSet::new();
    for (target, r) in &results {
        // No shared response: every session sees its own hello's targets.
        assert_eq!(r.prod_listeners, vec![target.clone()]);
        for l in &r.listeners {
            assert!(ports.insert(l.clone()), "port {l} handed out twice");
        }
    }
    assert_eq!(ports.len(), 32);
    assert_eq!(c.list().await.unwrap().sessions.len(), 8);
    h.stop().await;
}

#[tokio::test]
async fn occupied_ports_are_skipped_and_exhaustion_is_resource_exhausted() {
    let cfg = test_config(3);
    let (a, _) = cfg
        .port_range
        .split_once('-')
        .map(|(a, b)| (a.parse::<u16>().unwrap(), b))
        .unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
    let h = Harness::start(cfg).await;
    let c = h.client(None).await;
    let r = c.open("uid-p1", "PROD", 2, &["127.0.0.1:1"]).await;
    assert!(
        !r.listeners.contains(&format!("127.0.0.1:{a}")),
        "occupied port handed out: {:?}",
        r.listeners
    );
    let err = c.req("uid-p2", "PROD", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("1 taken by other programs"),
        "{}",
        err.message()
    );
    assert!(
        h.gateway
            .registry
            .get("uid-p2", &control::auth::Identity("anonymous".into()))
            .is_err()
    );
    drop(squatter);
    h.stop().await;
}

#[tokio::test]
async fn an_abandoned_req_releases_its_session() {
    let h = Harness::start(test_config(2)).await;
    let c = h.client(None).await;
    let r = tokio::time::timeout(Duration::from_millis(300), c.req("uid-gone", "PROD", 2)).await;
    assert!(r.is_err(), "req should still be waiting for its hello");
    // The server notices the cancelled call and releases the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.gateway.registry.is_empty() || h.gateway.pool.in_use() != 0 {
        assert!(
            Instant::now() < deadline,
            "abandoned session was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_invalid_argument_with_a_clear_message() {
    let h = Harness::start(test_config(3)).await;
    let c = h.client(None).await;
    for n in [0, -1, 100_000] {
        let err = c.req("uid-bad", "PROD", n).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "num_conn {n}");
        assert!(err.message().contains("num_conn"), "{}", err.message());
    }
    assert_eq!(
        c.req("", "PROD", 1).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        c.req("uid-bad", "MIDDLE", 1).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    c.open("uid-ok", "PROD", 1, &["127.0.0.1:1"]).await;
    for bad in [
        "nohostport",
        "[::1]5100",
        "2001:db8::1:80",
        "host:0",
        "h:99999",
        "bad host:1",
    ] {
        let err = c.update("uid-ok", "PROD", &[bad]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(
            err.message().contains(bad.trim()),
            "message should name '{bad}': {}",
            err.message()
        );
    }
    assert_eq!(
        c.update("uid-ok", "PROD", &[]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let bad_key = control::proto::UpdateTargets {
        uid: "uid-ok".into(),
        remote_listeners: vec!["127.0.0.1:1".into()],
        wan_key: "not-hex".into(),
        ..Default::default()
    };
    assert_eq!(
        c.update_with(bad_key).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let bad_allow = control::proto::UpdateTargets {
        uid: "uid-ok".into(),
        remote_listeners: vec!["127.0.0.1:1".into()],
        allowed_sources: vec!["10.0.0.0/99".into()],
        ..Default::default()
    };
    assert_eq!(
        c.update_with(bad_allow).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // A malformed hello target is refused too.
    assert_eq!(
        c.hello("uid-ok", "PROD", &["no-port"])
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // IPv6 targets in brackets are fine.
    c.update("uid-ok", "PROD", &["[::1]:5100"]).await.unwrap();
    h.stop().await;
}

/// Drives futures concurrently and collects their outputs in order.
async fn join_vec<F: Future + Unpin>(mut futs: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if outs[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => outs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(|o| o.expect("all ready")).collect()
}
