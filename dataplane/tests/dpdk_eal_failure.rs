//! EAL refusing its arguments: the error keeps the arguments and EAL's reason, and the process
//! remembers the failure (DPDK cannot be initialised twice), so a second start, even with good
//! arguments, says to restart instead of crashing inside DPDK. One test in its own binary: EAL
//! state is per process.

use dataplane::dpdk::{DpdkError, Eal};

fn args(lcores: &str) -> Vec<String> {
    [
        "eal-failure-test",
        "-l",
        lcores,
        "--no-pci",
        "--no-huge",
        "-m",
        "64",
        "--no-shconf",
    ]
    .map(String::from)
    .into()
}

#[test]
fn a_refused_eal_start_is_typed_and_remembered() {
    // RTE_MAX_LCORE is 128 in Debian's build: lcore 500 cannot exist.
    let bad = args("500");
    let err = Eal::init(&bad).expect_err("EAL refuses an lcore beyond RTE_MAX_LCORE");
    match &err {
        DpdkError::EalInit { args, errno, .. } => {
            assert_eq!(args, &bad, "the error keeps the arguments");
            assert_ne!(*errno, 0, "EAL's errno is kept: {err}");
        }
        other => panic!("expected EalInit, got {other:?}"),
    }
    assert!(err.to_string().contains("check the EAL arguments"), "{err}");
    let again = Eal::init(&args("0")).expect_err("EAL cannot start after a failed start");
    assert!(
        matches!(&again, DpdkError::EalFailedEarlier(why) if why.contains("500")),
        "{again:?}"
    );
    assert!(again.to_string().contains("restart the process"), "{again}");
}
