//! Flow steering rules built for real NICs, checked by the one virtual device here that
//! validates `rte_flow` (net_tap; this kernel cannot install them: no cls_flower). Needs root
//! (a tap device in a private network namespace).

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::dpdk::{DpdkError, Eal, Mempool, Port, PortSetup, flow, probe_vdev};
use dataplane::stack::steering::{EphemeralBlocks, SteeringRule};

#[test]
fn steering_rules_validate_on_net_tap_and_bad_ones_are_refused_precisely() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (a tap device); run it as root, as CI does"
    );
    // SAFETY: unshare affects only this thread and those it spawns: the tap device lives in a
    // namespace that dies with the process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());

    Eal::init(&[
        "s2-flow-test".into(),
        "-l".into(),
        "0".into(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        "256".into(),
        "--no-shconf".into(),
        "--vdev=net_tap0,iface=s2tap0".into(),
        "--log-level=lib.eal:error".into(),
        "--log-level=pmd.net.tap:error".into(),
    ])
    .expect("EAL");
    let pool = Arc::new(Mempool::new("flow_test", 4095, 64, 2176, None).expect("mempool"));
    let setup = PortSetup {
        rx_queues: 2,
        tx_queues: 2,
        ..PortSetup::default()
    };
    let tap = Port::start("net_tap0", &setup, Arc::clone(&pool)).expect("tap port");
    let ip = Ipv4Addr::new(198, 51, 100, 10);

    let mut rules = EphemeralBlocks::new(2).rules(ip);
    rules.push(SteeringRule::listener(ip, 5100, 1));
    for r in &rules {
        flow::validate(tap.id(), r).unwrap_or_else(|e| panic!("{r:?} refused: {e}"));
    }

    let bad = SteeringRule::listener(ip, 5100, 7);
    let err = flow::validate(tap.id(), &bad).expect_err("queue 7 of a 2-queue port");
    let DpdkError::Call { call, what, .. } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(*call, "rte_flow_validate");
    assert!(what.contains("queue: 7"), "{err}");

    // A device without flow support says so (ENOSYS), naming the rule.
    let ring = probe_vdev("net_ring0").expect("net_ring vdev");
    let ring = Port::start(&ring, &PortSetup::default(), Arc::clone(&pool)).expect("ring port");
    let err = flow::validate(ring.id(), &rules[0]).expect_err("net_ring has no rte_flow");
    assert!(matches!(err, DpdkError::Call { code: 38, .. }), "{err}");
}
