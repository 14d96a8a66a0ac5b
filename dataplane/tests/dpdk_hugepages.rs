//! EAL on real hugepages that the `hugepages` crate reserved and mounted: packets loop through a
//! `net_ring` port out of a hugepage-backed mempool, and afterwards exactly the reserved pages are
//! given back. Needs root (sysfs writes, mount). EAL runs in a child process (this same test
//! binary, re-executed) so its mappings are gone before the pages are released.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use dataplane::dpdk::{Eal, Mempool, Port, PortSetup};
use hugepages::{HostSys, NodeId, PageSize, Sys};

const CHILD: &str = "S2_HUGEPAGES_EAL_CHILD";
const MBUFS: u32 = 2047;
const DATA_ROOM: u16 = 2176;

fn pool_2m(sys: &dyn Sys) -> hugepages::Pool {
    hugepages::pools(sys)
        .expect("hugepage pools")
        .into_iter()
        .find(|p| p.node == NodeId(0) && p.size == PageSize::TWO_MIB)
        .expect("a 2 MiB hugepage pool on node 0")
}

#[test]
fn eal_runs_on_hugepages_reserved_and_released_by_the_hugepages_crate() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it reserves hugepages and mounts hugetlbfs); run it as root, as CI does"
    );
    let sys = HostSys;
    let before = pool_2m(&sys);
    let need = hugepages::pages_needed(
        hugepages::process_bytes([hugepages::mempool_bytes(
            MBUFS,
            u32::from(DATA_ROOM) - 128,
            64,
            1,
        )]),
        PageSize::TWO_MIB,
    );
    let reservation = hugepages::ensure_free(&sys, NodeId(0), PageSize::TWO_MIB, need)
        .expect("reserving hugepages");
    let dir = std::env::temp_dir().join(format!("s2-hugetlbfs-{}", std::process::id()));
    let mounted =
        hugepages::ensure_mounted(&sys, PageSize::TWO_MIB, &dir).expect("mounting hugetlbfs");
    assert!(pool_2m(&sys).free >= need, "the reserved pages are free");

    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "eal_runs_on_hugepages_reserved_and_released_by_the_hugepages_crate",
        ])
        .arg("--nocapture")
        .env(CHILD, &mounted.mount.path)
        .output()
        .expect("re-running the test binary");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Give back exactly what was reserved, and the mount if it was ours, whatever the child did.
    if mounted.ours {
        hugepages::unmount(&sys, &mounted.mount).expect("unmounting");
        let _ = std::fs::remove_dir(&mounted.mount.path);
    }
    let released = hugepages::release(&sys, &reservation).expect("releasing hugepages");
    assert!(out.status.success(), "EAL child failed:\n{log}");
    assert!(
        log.contains("hugepages in use: "),
        "child did not report:\n{log}"
    );
    assert_eq!(released.returned, reservation.added, "{released:?}");
    let after = pool_2m(&sys);
    assert_eq!(
        (after.total, after.free),
        (before.total, before.free),
        "the pool is back as it was"
    );
}

/// EAL with `--huge-dir`: a hugepage-backed mempool, a `net_ring` loopback port, 256 packets out
/// and back.
fn child(huge_dir: &Path) {
    let sys = HostSys;
    let free_before = pool_2m(&sys).free;
    let eal = Eal::init(&[
        "s2-hugepages-test".into(),
        "-l".into(),
        "0".into(),
        "--no-pci".into(),
        "--huge-dir".into(),
        huge_dir.display().to_string(),
        "--huge-unlink".into(),
        "--file-prefix".into(),
        format!("s2hp{}", std::process::id()),
        "--vdev=net_ring0".into(),
        "--log-level=lib.eal:error".into(),
    ])
    .expect("EAL starts on the reserved hugepages");
    assert!(eal.workers().is_empty());
    let pool = Arc::new(Mempool::new("hp_test", MBUFS, 64, DATA_ROOM, None).expect("mempool"));
    let in_use = free_before - pool_2m(&sys).free;
    println!("hugepages in use: {in_use}");
    assert!(in_use > 0, "the mempool lives in the reserved hugepages");
    let mut port =
        Port::start("net_ring0", &PortSetup::default(), Arc::clone(&pool)).expect("port");
    let mut rx = port.rx_queue(0).expect("rx");
    let mut tx = port.tx_queue(0).expect("tx");
    let mut out = Vec::with_capacity(256);
    for i in 0..256u32 {
        let mut m = pool.alloc().expect("mbuf");
        m.append(64).expect("room").fill(i as u8);
        out.push(m);
    }
    let mut sent = 0;
    while !out.is_empty() {
        sent += tx.burst(&mut out);
    }
    assert_eq!(sent, 256);
    let mut back = Vec::with_capacity(64);
    let mut seen = Vec::new();
    for _ in 0..1000 {
        back.clear();
        rx.burst(&mut back, 64);
        seen.extend(back.iter().map(|m| (m.len(), m.data()[0], m.data()[63])));
        if seen.len() == 256 {
            break;
        }
    }
    drop(back);
    assert_eq!(seen.len(), 256, "every packet came back through net_ring");
    for (i, (len, first, last)) in seen.into_iter().enumerate() {
        assert_eq!((len, first, last), (64, i as u8, i as u8), "packet {i}");
    }
    drop((rx, tx, port));
    assert_eq!(pool.available(), pool.size(), "every mbuf back in the pool");
}
