//! Builds the real namespace testbed (needs root and iproute2, ping): checks
//! the data path routed through both gateways, the control network, jumbo
//! MTU, a TCP transfer over the direct routed path (prod -> gn1 -> gn2 ->
//! cons, no proxy), idempotent `up`, and that `down` removes everything.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};

use common::{BIN, Reap, reports};
use testbed::topology::{CONS_APP_IP, GN1_CTL_IP, GN2_CTL_IP, GN2_LAN_IP, PROD_APP_IP};
use testbed::traffic::{consumer_seed, expected_sha256, producer_seed};
use testbed::{Host, Topology, require_root};

/// Waits at most `DEADLINE` for the child; returns its stdout after checking
/// that it succeeded.
fn finish(what: &str, mut child: Reap, stdout: &mut dyn Read) -> String {
    let status = common::wait(&mut child, what);
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    assert!(status.success(), "{what} failed ({status}): {err}");
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    out
}

fn ok(what: &str, out: std::io::Result<Output>) {
    let out =
        out.unwrap_or_else(|e| panic!("{what}: could not run (is iputils-ping installed?): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn testbed_up_down() {
    if let Err(e) = require_root() {
        panic!("testbed_up_down cannot run: {e}");
    }
    // Short, per-process prefix so parallel runs never collide.
    let topo = Topology::with_prefix(format!("s2tbtest{}", std::process::id()));
    let guard = topo.clone().up_guarded().expect("first up()");
    // A second up() on an existing testbed must rebuild it, not fail.
    guard.up().expect("second up() (idempotence)");
    assert!(guard.exists());
    for host in Host::ALL {
        assert!(guard.host_exists(host), "{} missing", guard.ns(host));
    }

    let ping = |host: Host, args: &[&str], target: std::net::Ipv4Addr| {
        guard
            .command(host, "ping")
            .args(["-n", "-c", "1", "-W", "2"])
            .args(args)
            .arg(target.to_string())
            .output()
    };
    ok("cons -> gn2 lan", ping(Host::Cons, &[], GN2_LAN_IP));
    ok(
        "cons -> prod (routed via gn2, gn1)",
        ping(Host::Cons, &[], PROD_APP_IP),
    );
    ok(
        "prod -> cons (routed via gn1, gn2)",
        ping(Host::Prod, &[], CONS_APP_IP),
    );
    // 8972 + 28 header bytes = 9000: jumbo frames pass unfragmented end to end.
    ok(
        "cons -> prod with a 9000-byte DF packet",
        ping(Host::Cons, &["-M", "do", "-s", "8972"], PROD_APP_IP),
    );
    ok("ctl -> gn1 mgmt", ping(Host::Ctl, &[], GN1_CTL_IP));
    ok("ctl -> gn2 mgmt", ping(Host::Ctl, &[], GN2_CTL_IP));

    let ifaces = guard.interfaces(Host::Gn1).expect("list gn1 interfaces");
    let names: Vec<_> = ifaces.iter().map(|i| i.name.as_str()).collect();
    for want in ["lan0", "wan0", "mgmt0"] {
        assert!(names.contains(&want), "gn1 interfaces: {names:?}");
    }

    // TCP over the direct routed path, with the real CLI tools.
    const BYTES: u64 = 4 << 20;
    let target = format!("{PROD_APP_IP}:5001");
    let mut producer = Reap(
        guard
            .command(Host::Prod, BIN)
            .args([
                "producer", "--listen", &target, "--bytes", "4M", "--seed", "9",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn producer in prod"),
    );
    let mut p_stdout = BufReader::new(producer.0.stdout.take().unwrap());
    let mut ready = String::new();
    p_stdout.read_line(&mut ready).expect("read READY");
    assert_eq!(ready, "READY\n", "producer's first line");
    let mut consumer = Reap(
        guard
            .command(Host::Cons, BIN)
            .args([
                "consumer",
                "--connect",
                &target,
                "--bytes",
                "4M",
                "--seed",
                "9",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn consumer in cons"),
    );
    let mut c_stdout = consumer.0.stdout.take().unwrap();
    let c = reports(&finish("consumer in cons", consumer, &mut c_stdout));
    let p = reports(&finish("producer in prod", producer, &mut p_stdout));
    let down = expected_sha256(producer_seed(9, 0), BYTES);
    let up = expected_sha256(consumer_seed(9, 0), BYTES);
    assert_eq!((p.len(), c.len()), (1, 1));
    assert_eq!((&c[0].received_sha256, c[0].received_bytes), (&down, BYTES));
    assert_eq!((&p[0].received_sha256, p[0].received_bytes), (&up, BYTES));

    guard.teardown().expect("down()");
    assert!(!topo.exists(), "namespaces left behind after down()");
    topo.down()
        .expect("down() on an absent testbed is not an error");
}
