//! Checks made before EAL starts, by the engine at start and by `s2cs doctor` without starting
//! anything. EAL can be initialised once per process, so whatever can be found out before it
//! is: the ports and lcores against the profile, the EAL arguments, the driver plugins they
//! name, and hugepages. A gateway short of hugepages then says how many it needs and how to
//! reserve them; otherwise EAL fails with "Cannot get hugepage information", or the mempool
//! fails later with "Cannot allocate memory".

use std::path::Path;

use hugepages::{NodeId, Plan, Sys};
use nic_profiles::{Memory, Profile};

use super::engine::{DpdkEngineError, DpdkOptions};
use super::placement::Placer;
use crate::dpdk::{DpdkError, PMD_DIR};

/// What the checks found: what EAL will be started with.
#[derive(Debug)]
pub struct Ready {
    pub eal_args: Vec<String>,
    /// The hugepages EAL will use; `None` when the profile runs without them.
    pub hugepages: Option<Plan>,
    pub(super) placer: Placer,
}

/// Checks `options` as [`DpdkEngine::start`](super::DpdkEngine::start) will use them, on this
/// host, without starting EAL.
pub fn check(options: &DpdkOptions, sys: &dyn Sys) -> Result<Ready, DpdkEngineError> {
    let DpdkOptions {
        profile,
        ports,
        layout,
        stream_lcores,
        stack: _,
    } = options;
    if ports.is_empty() {
        return Err(DpdkEngineError::NoPorts);
    }
    let lcores = &layout.dataplane;
    let placer = Placer::new(lcores, stream_lcores, profile.lcores.streams_per_lcore)?;
    let config = nic_profiles::port_config(profile);
    let queues = config.rx_queues.min(config.tx_queues);
    if lcores.len() > usize::from(queues) {
        return Err(DpdkEngineError::Queues {
            queues,
            lcores: lcores.len(),
        });
    }
    let eal_args = nic_profiles::eal_args(profile, ports, layout, &[])?;
    let missing = crate::dpdk::missing_pmds(&eal_args, Path::new(PMD_DIR));
    if !missing.is_empty() {
        return Err(DpdkError::PmdMissing {
            dir: PMD_DIR.to_owned(),
            missing,
        }
        .into());
    }
    // The main lcore and the dataplane lcores use the pool.
    let hugepages =
        hugepages(sys, profile, lcores.len() + 1).map_err(DpdkEngineError::Hugepages)?;
    Ok(Ready {
        eal_args,
        hugepages,
        placer,
    })
}

/// Checks that the hugepages a profile's EAL memory needs are free and mounted. Returns the
/// plan it checked, or `None` when the profile does not run on hugepages (`no-huge`; and
/// `in-memory`, which EAL maps without hugetlbfs files and which this check does not model).
///
/// The need is the profile's mempool for `lcores` lcores plus EAL's own slack, in the host's
/// default page size. The node is the profile's `lcores.numa_node`; without one, the node with
/// the most free pages (EAL takes memory from any node then).
pub fn hugepages(
    sys: &dyn Sys,
    profile: &Profile,
    lcores: usize,
) -> Result<Option<Plan>, hugepages::Error> {
    if profile.eal.memory != Memory::Hugepages {
        return Ok(None);
    }
    let bytes = eal_bytes(profile, lcores);
    let size = hugepages::default_page_size(sys)?;
    let status = hugepages::status(sys)?;
    let node = match profile.lcores.numa_node {
        Some(n) => NodeId(n),
        None => status
            .pools
            .iter()
            .filter(|p| p.size == size)
            .max_by_key(|p| p.free)
            .map_or(NodeId(0), |p| p.node),
    };
    let plans = hugepages::plan(size, &[(node, bytes)]);
    status.verify(&plans)?;
    Ok(plans.into_iter().next())
}

/// Hugepage bytes EAL needs for the profile's mempool used by `lcores` lcores.
fn eal_bytes(profile: &Profile, lcores: usize) -> u64 {
    let m = nic_profiles::port_config(profile).mempool;
    hugepages::process_bytes([hugepages::mempool_bytes(
        m.mbufs,
        // The profile's data room includes the 128-byte headroom; the planner's does not.
        u32::from(m.data_room).saturating_sub(128),
        m.cache,
        u32::try_from(lcores).unwrap_or(u32::MAX),
    )])
}

#[cfg(test)]
mod tests {
    use hugepages::PageSize;
    use hugepages::testing::FakeSys;

    use super::*;

    const M2: PageSize = PageSize::TWO_MIB;

    fn profile(name: &str) -> Profile {
        Profile::resolve(name).unwrap()
    }

    /// Pages the connectx6dx profile's pool needs with two lcores (main and one dataplane).
    fn needed() -> u64 {
        hugepages::pages_needed(eal_bytes(&profile("connectx6dx"), 2), M2)
    }

    /// A host with 2 MiB as the default page size, two nodes, and hugetlbfs mounted.
    fn host(free_node0: u64, free_node1: u64) -> FakeSys {
        let sys = FakeSys::new()
            .pool(NodeId(0), M2, free_node0, free_node0)
            .pool(NodeId(1), M2, free_node1, free_node1);
        sys.add_mount_line("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0");
        sys
    }

    #[test]
    fn enough_free_pages_on_a_mounted_size_pass_and_say_where() {
        let n = needed();
        assert!(n > 1, "the profile's pool spans pages: {n}");
        let plan = hugepages(&host(n, 0), &profile("connectx6dx"), 2)
            .unwrap()
            .unwrap();
        assert_eq!((plan.node, plan.size, plan.pages), (NodeId(0), M2, n));
    }

    #[test]
    fn too_few_pages_name_the_shortfall_and_the_command() {
        let n = needed();
        let err = hugepages(&host(n - 1, 0), &profile("connectx6dx"), 2).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("has {} free 2M pages but {n} are needed", n - 1))
                && msg.contains("hugepages reserve --size 2M"),
            "{msg}"
        );
    }

    #[test]
    fn without_a_numa_node_the_node_with_the_most_free_pages_counts() {
        let n = needed();
        let mut p = profile("connectx6dx");
        p.lcores.numa_node = Some(0);
        let err = hugepages(&host(1, n + 10), &p, 2).unwrap_err();
        assert!(err.to_string().contains("node0 has 1 free"), "{err}");
        p.lcores.numa_node = None;
        let plan = hugepages(&host(1, n + 10), &p, 2).unwrap().unwrap();
        assert_eq!(plan.node, NodeId(1));
    }

    #[test]
    fn no_mount_is_refused_with_the_mount_command() {
        let n = needed();
        let sys = FakeSys::new().pool(NodeId(0), M2, n, n);
        let err = hugepages(&sys, &profile("connectx6dx"), 2).unwrap_err();
        assert!(err.to_string().contains("mount -t hugetlbfs"), "{err}");
    }

    #[test]
    fn profiles_without_hugepages_are_not_checked() {
        let sys = FakeSys::new();
        assert_eq!(
            hugepages(&sys, &profile("af_packet_jumbo"), 2).unwrap(),
            None
        );
    }

    fn options(profile_name: &str, port: &str, dataplane: Vec<u32>) -> DpdkOptions {
        DpdkOptions {
            profile: profile(profile_name),
            ports: vec![port.parse().unwrap()],
            layout: nic_profiles::LcoreLayout::new(0, dataplane),
            stream_lcores: Vec::new(),
            stack: super::super::StackOptions::default(),
        }
    }

    #[test]
    fn check_gives_the_eal_arguments_and_the_pages_start_will_use() {
        let o = options(
            "af_packet_jumbo",
            "name=wan,ipv4=192.0.2.1/24,iface=lo",
            vec![1],
        );
        let ready = check(&o, &FakeSys::new()).unwrap();
        assert!(ready.eal_args.iter().any(|a| a == "--no-huge"), "{ready:?}");
        assert!(ready.hugepages.is_none());

        let o = options(
            "connectx6dx",
            "name=wan,ipv4=192.0.2.1/24,pci=0000:3b:00.0",
            vec![1],
        );
        let n = needed();
        let ready = check(&o, &host(n, 0)).unwrap();
        assert_eq!(ready.hugepages.map(|p| p.pages), Some(n));
        let err = check(&o, &host(n - 1, 0)).unwrap_err();
        assert!(matches!(err, DpdkEngineError::Hugepages(_)), "{err}");
    }

    #[test]
    fn check_refuses_what_start_would_fail_on() {
        let mut o = options(
            "af_packet_jumbo",
            "name=wan,ipv4=192.0.2.1/24,iface=lo",
            vec![1],
        );
        o.ports.clear();
        assert!(matches!(
            check(&o, &FakeSys::new()),
            Err(DpdkEngineError::NoPorts)
        ));
        // One queue pair per port, two polling lcores.
        let o = options(
            "af_packet_jumbo",
            "name=wan,ipv4=192.0.2.1/24,iface=lo",
            vec![1, 2],
        );
        assert!(matches!(
            check(&o, &FakeSys::new()),
            Err(DpdkEngineError::Queues {
                queues: 1,
                lcores: 2
            })
        ));
        let mut o = options(
            "af_packet_jumbo",
            "name=wan,ipv4=192.0.2.1/24,iface=lo",
            vec![1],
        );
        o.stream_lcores = vec![3];
        assert!(matches!(
            check(&o, &FakeSys::new()),
            Err(DpdkEngineError::Placement(_))
        ));
    }
}
