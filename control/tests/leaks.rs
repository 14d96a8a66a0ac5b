//! Nothing leaks: after many sessions (set up, forwarding real bytes, broken by a peer reset or
//! an unreachable target, released) the process has the same file descriptors and threads, and
//! every port is back in the pool. The only test in its binary, so the process-wide counts are
//! not disturbed by other tests.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Harness, test_config};

/// One session forwarding to `target`; a client sends and reads back through it.
async fn session_round(c: &common::Client, uid: &str, targets: &[String]) -> String {
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let r = c.open(uid, "PROD", targets.len() as i32, &refs).await;
    c.update(uid, "PROD", &refs).await.unwrap();
    r.listeners[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_with_traffic_resets_and_failures_leak_nothing() {
    let mut cfg = test_config(5);
    cfg.wan_plaintext = true;
    let h = Harness::start(cfg).await;
    let c = h.client(None).await;

    // An echo app that answers and closes; one that resets; a dead address.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in echo.incoming() {
            let Ok(mut s) = s else { break };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    let resetter = TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_addr = resetter.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in resetter.incoming() {
            let Ok(s) = s else { break };
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    });
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);

    let exchange = |listener: String| {
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(listener).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(&[7u8; 100_000]);
            let _ = s.shutdown(Shutdown::Write);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got.len()
        })
    };

    // Warm-up round so lazily created runtime resources exist before counting.
    let l = session_round(&c, "warm", std::slice::from_ref(&echo_addr)).await;
    assert_eq!(exchange(l).await.unwrap(), 100_000);
    c.release("warm").await.unwrap();
    let (fds, threads) = (common::fd_count(), common::thread_count());

    for i in 0..30 {
        let uid = format!("leak-{i}");
        let target = match i % 3 {
            0 => echo_addr.clone(),
            1 => reset_addr.clone(),
            _ => dead_addr.clone(),
        };
        let l = session_round(&c, &uid, &[target.clone(), target]).await;
        let got = exchange(l).await.unwrap();
        if i % 3 == 0 {
            assert_eq!(got, 100_000, "echo through the proxy");
        }
        c.release(&uid).await.unwrap();
    }
    // Also sessions released while a connection is open and idle.
    for i in 0..5 {
        let uid = format!("open-{i}");
        let l = session_round(&c, &uid, std::slice::from_ref(&echo_addr)).await;
        let s = TcpStream::connect(&l).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.status(&uid).await.unwrap().streams[0].active_connections == 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.release(&uid).await.unwrap();
        drop(s);
    }
    assert_eq!(h.gateway.pool.in_use(), 0, "ports not returned");
    assert!(h.gateway.registry.is_empty());
    // The test's own app threads and client sockets end asynchronously; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (common::fd_count() != fds || common::thread_count() != threads)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(common::fd_count(), fds, "file descriptors leaked");
    assert_eq!(common::thread_count(), threads, "threads leaked");
    h.stop().await;
}
