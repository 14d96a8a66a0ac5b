//! What the host has: every pool and every hugetlbfs mount, as a table for people
//! (`hugepages status`) and as JSON for programs (`hugepages status --json`), plus
//! [`Status::verify`], the check the gateway makes before starting DPDK.

use std::fmt;

use serde::Serialize;

use crate::size::format_bytes;
use crate::sysfs::find_pool;
use crate::{Error, Mount, Plan, Pool, Sys};

/// A snapshot of the host's hugepage pools and hugetlbfs mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub pools: Vec<Pool>,
    pub mounts: Vec<Mount>,
}

/// Reads every pool and mount; needs no privileges.
pub fn status(sys: &dyn Sys) -> Result<Status, Error> {
    Ok(Status {
        pools: crate::sysfs::pools(sys)?,
        mounts: crate::mounts::mounts(sys)?,
    })
}

impl Status {
    /// Checks that each plan's pages are free and that a hugetlbfs of its size is mounted.
    pub fn verify(&self, plans: &[Plan]) -> Result<(), Error> {
        for plan in plans {
            let pool = find_pool(&self.pools, plan.node, plan.size)?;
            if pool.free < plan.pages {
                return Err(Error::TooFewFree {
                    node: plan.node,
                    size: plan.size,
                    free: pool.free,
                    needed: plan.pages,
                });
            }
            if !self.mounts.iter().any(|m| m.page_size == plan.size) {
                return Err(Error::MountMissing {
                    size: plan.size,
                    mounts: self.mounts.clone(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pools.is_empty() {
            writeln!(
                f,
                "no hugepage pools: this kernel was built without hugetlb support"
            )?;
        } else {
            writeln!(
                f,
                "{:<6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>10}",
                "node", "size", "total", "free", "in use", "surplus", "free bytes"
            )?;
            for p in &self.pools {
                writeln!(
                    f,
                    "{:<6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>10}",
                    p.node.0,
                    p.size.to_string(),
                    p.total,
                    p.free,
                    p.in_use(),
                    p.surplus,
                    format_bytes(p.free * p.size.bytes()),
                )?;
            }
        }
        if self.mounts.is_empty() {
            write!(
                f,
                "hugetlbfs mounts: none (DPDK needs one per page size it uses; \
                 `hugepages reserve` mounts one)"
            )
        } else {
            write!(f, "hugetlbfs mounts:")?;
            for m in &self.mounts {
                write!(f, "\n  {:<24} pagesize={}", m.path.display(), m.page_size)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeSys;
    use crate::{NodeId, PageSize, plan};

    const M2: PageSize = PageSize::TWO_MIB;

    fn sample() -> FakeSys {
        let sys =
            FakeSys::new()
                .pool(NodeId(0), M2, 512, 500)
                .pool(NodeId(0), PageSize::ONE_GIB, 0, 0);
        sys.add_mount_line("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0");
        sys
    }

    #[test]
    fn table_lists_pools_and_mounts() {
        let text = status(&sample()).unwrap().to_string();
        let expected = "\
node    size    total     free   in use  surplus free bytes
0         2M      512      500       12        0   1000 MiB
0         1G        0        0        0        0        0 B
hugetlbfs mounts:
  /dev/hugepages           pagesize=2M";
        assert_eq!(text, expected);
        let empty = status(&FakeSys::new().flat_pool(M2, 0, 0))
            .unwrap()
            .to_string();
        assert!(empty.ends_with("hugetlbfs mounts: none (DPDK needs one per page size it uses; `hugepages reserve` mounts one)"), "{empty}");
    }

    #[test]
    fn json_has_sizes_as_strings_and_nodes_as_numbers() {
        let json = serde_json::to_value(status(&sample()).unwrap()).unwrap();
        assert_eq!(json["pools"][0]["size"], "2M");
        assert_eq!(json["pools"][0]["node"], 0);
        assert_eq!(json["pools"][0]["free"], 500);
        assert_eq!(json["mounts"][0]["page_size"], "2M");
        assert_eq!(json["mounts"][0]["path"], "/dev/hugepages");
    }

    #[test]
    fn verify_wants_free_pages_and_a_mount() {
        let s = status(&sample()).unwrap();
        s.verify(&plan(M2, &[(NodeId(0), 1000 * crate::size::MIB)]))
            .unwrap();
        let err = s
            .verify(&plan(M2, &[(NodeId(0), 2 * crate::size::GIB)]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("node0 has 500 free 2M pages but 1024 are needed"),
            "{err}"
        );
        let no_mount = Status {
            mounts: Vec::new(),
            ..s
        };
        let err = no_mount.verify(&plan(M2, &[(NodeId(0), 1)])).unwrap_err();
        assert!(matches!(err, Error::MountMissing { size: M2, .. }), "{err}");
        assert!(
            err.to_string()
                .contains("mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages"),
            "{err}"
        );
    }
}
