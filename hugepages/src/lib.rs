//! Hugepages for the DPDK dataplane: discover the kernel's pools, reserve pages per page size and
//! NUMA node, mount hugetlbfs, verify a plan before EAL starts, and release exactly what was
//! reserved.
//!
//! DPDK's EAL maps its memory (mempools, descriptor rings) from hugepages. It needs free pages of
//! a size on the NUMA node of its lcores and NIC, and a hugetlbfs of that size mounted (unless it
//! runs `--in-memory`); without them it stops with "No free 2048 kB hugepages reported on node 0"
//! or "no mounted hugetlbfs found for that size". The gateway sets both up itself rather than
//! asking the operator for a boot-time configuration.
//!
//! How it is driven:
//! 1. Size the need: [`mempool_bytes`] per mbuf pool, [`process_bytes`] for the process (adds
//!    EAL's own [`EAL_SLACK_BYTES`]), [`plan`] into pages per node.
//! 2. [`ensure_plan`] / [`ensure_free`] reserve only the pages not already free (all or nothing
//!    per pool: [`reserve`] rolls back when the kernel gives fewer), and [`ensure_mounted`] reuses
//!    or creates a hugetlbfs. Both report what they changed ([`Reservation`], [`Mounted::ours`]).
//! 3. [`Status::verify`] (from [`status`]) checks the plan before EAL starts.
//! 4. [`release`] and [`unmount`] undo exactly what step 2 changed. The `hugepages` CLI keeps that
//!    record across runs in a [`State`] file.
//!
//! Every operating-system call goes through the [`Sys`] seam: [`HostSys`] is the kernel, and
//! `testing::FakeSys` (feature `testing`) is an in-memory kernel that models how pools grow,
//! fall short and shrink, so all of the above is unit-tested without root.

mod error;
mod mounts;
mod plan;
mod reserve;
mod size;
mod state;
mod status;
mod sys;
mod sysfs;

pub mod cli;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::Error;
pub use mounts::{Mount, Mounted, ensure_mounted, mounts, unmount};
pub use plan::{
    EAL_SLACK_BYTES, MBUF_HEADER_BYTES, PKTMBUF_HEADROOM_BYTES, Plan, mempool_bytes, pages_needed,
    plan, process_bytes,
};
pub use reserve::{Released, Reservation, ensure_free, ensure_plan, release, reserve};
pub use size::{GIB, KIB, MIB, NodeId, PageSize, format_bytes, parse_bytes};
pub use state::{DEFAULT_STATE_PATH, State};
pub use status::{Status, status};
pub use sys::{HostSys, MOUNTS_PATH, Sys};
pub use sysfs::{FLAT_ROOT, MEMINFO_PATH, NODE_ROOT, Pool, default_page_size, pools};

#[cfg(test)]
mod host_tests {
    use super::*;

    /// Reads the real host; needs no root. Every Linux x86-64 kernel with hugetlb has a 2M pool.
    #[test]
    fn host_status_reads_and_has_a_2m_pool() {
        let status = status(&HostSys).unwrap();
        assert!(
            status
                .pools
                .iter()
                .any(|p| p.size == PageSize::TWO_MIB && p.node == NodeId(0)),
            "no 2M pool on node 0 in {status:#?}"
        );
        for p in &status.pools {
            assert!(p.free <= p.total + p.surplus, "{p:?}");
        }
    }
}
