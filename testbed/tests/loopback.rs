//! End-to-end check of the traffic tools over loopback (no root needed):
//! three streams, 8 MiB each way, every hash checked against the pattern.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use testbed::traffic::{
    bind_producer, consumer_seed, expected_sha256, producer_seed, run_consumer, serve_producer,
};

const STREAMS: usize = 3;
const BYTES: u64 = 8 << 20;
const SEED: u64 = 77;
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn three_streams_over_loopback_arrive_intact() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = bind_producer(&[any; STREAMS]).expect("bind loopback listeners");
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();

    let (tx, rx) = mpsc::channel();
    let ptx = tx.clone();
    thread::spawn(move || {
        let _ = ptx.send(("producer", serve_producer(listeners, BYTES, SEED, 1)));
    });
    thread::spawn(move || {
        let _ = tx.send(("consumer", run_consumer(&addrs, BYTES, SEED)));
    });

    let mut producer = None;
    let mut consumer = None;
    for _ in 0..2 {
        let (who, result) = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("transfer did not finish within {DEADLINE:?}"));
        let reports = result.unwrap_or_else(|e| panic!("{who} failed: {e:#}"));
        if who == "producer" {
            producer = Some(reports);
        } else {
            consumer = Some(reports);
        }
    }
    let (producer, consumer) = (producer.unwrap(), consumer.unwrap());
    assert_eq!(producer.len(), STREAMS);
    assert_eq!(consumer.len(), STREAMS);

    for i in 0..STREAMS {
        let down = expected_sha256(producer_seed(SEED, i), BYTES);
        let up = expected_sha256(consumer_seed(SEED, i), BYTES);

        let p = &producer[i];
        assert_eq!(p.stream, i);
        assert_eq!(
            (p.sent_bytes, p.received_bytes),
            (BYTES, BYTES),
            "producer stream {i}"
        );
        assert_eq!(p.sent_sha256, down, "producer stream {i} sent");
        assert_eq!(p.received_sha256, up, "producer stream {i} received");
        assert!(p.first_byte_secs.is_some_and(|t| t <= p.elapsed_secs));

        let c = &consumer[i];
        assert_eq!(c.stream, i);
        assert_eq!(
            (c.sent_bytes, c.received_bytes),
            (BYTES, BYTES),
            "consumer stream {i}"
        );
        assert_eq!(c.sent_sha256, up, "consumer stream {i} sent");
        assert_eq!(c.received_sha256, down, "consumer stream {i} received");
        assert!(c.first_byte_secs.is_some_and(|t| t <= c.elapsed_secs));
    }
}
