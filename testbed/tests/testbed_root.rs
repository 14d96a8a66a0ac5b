//! Builds the real namespace testbed (needs root and iproute2, ping): checks
//! the data path routed through both gateways, the control network, jumbo
//! MTU, idempotent `up`, and that `down` removes everything.

use std::process::Output;

use testbed::topology::{CONS_APP_IP, GN1_CTL_IP, GN2_CTL_IP, GN2_LAN_IP, PROD_APP_IP};
use testbed::{Host, Topology, require_root};

fn ok(what: &str, out: std::io::Result<Output>) {
    let out = out.unwrap_or_else(|e| panic!("{what}: could not run (is iputils-ping installed?): {e}"));
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
    ok("cons -> prod (routed via gn2, gn1)", ping(Host::Cons, &[], PROD_APP_IP));
    ok("prod -> cons (routed via gn1, gn2)", ping(Host::Prod, &[], CONS_APP_IP));
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

    guard.teardown().expect("down()");
    assert!(!topo.exists(), "namespaces left behind after down()");
    topo.down().expect("down() on an absent testbed is not an error");
}
