//! Growing and shrinking hugepage pools, keeping count of exactly what this crate added.
//!
//! The kernel grows a pool when `nr_hugepages` is written with a larger number, but it may stop
//! short without an error when it cannot find enough free, physically contiguous memory (memory
//! is fragmented, or simply in use). So every write is read back: [`reserve`] either gets all the
//! pages it asked for or restores the old count and fails with [`Error::NotEnoughMemory`].
//! [`release`] lowers the pool by what a [`Reservation`] added and no more, so pages other
//! programs reserved stay; pages still in use are turned into surplus pages by the kernel, which
//! frees them when their user lets go, and the [`Released`] report says how many.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sysfs::{self, find_pool, read_count, write_count};
use crate::{Error, NodeId, PageSize, Plan, Sys};

/// Pages this crate added to one pool; what [`release`] takes away again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub node: NodeId,
    pub size: PageSize,
    pub added: u64,
}

impl fmt::Display for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} pages on {}", self.added, self.size, self.node)
    }
}

/// What [`release`] gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Released {
    pub node: NodeId,
    pub size: PageSize,
    /// Pages returned to the kernel now.
    pub returned: u64,
    /// Pages of the reservation still in use; the kernel frees them once their user exits.
    pub still_in_use: u64,
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: gave back {} pages",
            self.node, self.size, self.returned
        )?;
        if self.still_in_use > 0 {
            write!(
                f,
                "; {} more are still in use and go back to the kernel when their user exits \
                 (a running DPDK process, or leftover rtemap_* files in a hugetlbfs mount)",
                self.still_in_use
            )?;
        }
        Ok(())
    }
}

/// Adds `pages` pages of `size` to the pool of `node`. All or nothing: if the kernel grants fewer,
/// the pool is put back as it was and [`Error::NotEnoughMemory`] says how many it could give.
pub fn reserve(
    sys: &dyn Sys,
    node: NodeId,
    size: PageSize,
    pages: u64,
) -> Result<Reservation, Error> {
    let pools = sysfs::pools(sys)?;
    let pool = find_pool(&pools, node, size)?;
    let path = pool.nr_path();
    if pages == 0 {
        return Ok(Reservation {
            node,
            size,
            added: 0,
        });
    }
    let before = read_count(sys, &path)?;
    let wanted = before.saturating_add(pages);
    write_count(sys, &path, wanted)?;
    let now = read_count(sys, &path)?;
    if now >= wanted {
        return Ok(Reservation {
            node,
            size,
            added: now - before,
        });
    }
    // Short: give back what was granted, so a failed reserve leaves nothing behind.
    let free_bytes = sysfs::free_bytes(sys, node);
    if now != before {
        sys.write(&path, &before.to_string())
            .map_err(|source| Error::RollbackFailed {
                path: path.clone(),
                previous: before,
                source,
            })?;
    }
    Err(Error::NotEnoughMemory {
        node,
        size,
        requested: pages,
        got: now.saturating_sub(before),
        free_bytes,
    })
}

/// Makes sure `pages` pages of `size` are free on `node`, reserving only what is missing: pages
/// already free count, so calling this twice reserves once.
pub fn ensure_free(
    sys: &dyn Sys,
    node: NodeId,
    size: PageSize,
    pages: u64,
) -> Result<Reservation, Error> {
    let pools = sysfs::pools(sys)?;
    let free = find_pool(&pools, node, size)?.free;
    reserve(sys, node, size, pages.saturating_sub(free))
}

/// [`ensure_free`] for each plan; if one fails, what the earlier ones added is released again.
pub fn ensure_plan(sys: &dyn Sys, plans: &[Plan]) -> Result<Vec<Reservation>, Error> {
    let mut done = Vec::with_capacity(plans.len());
    for plan in plans {
        match ensure_free(sys, plan.node, plan.size, plan.pages) {
            Ok(r) => done.push(r),
            Err(e) => {
                for r in done.iter().rev() {
                    // Best effort: the first error is the one worth reporting, and a failed
                    // release here leaves pages reserved, not lost.
                    let _ = release(sys, r);
                }
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// Lowers the pool by what `reservation` added. Never below zero, and never by more than was
/// added, so pages others reserved since stay. Pages in use cannot be taken back at once: the
/// kernel lowers the pool anyway and frees them as surplus when they are unmapped, and
/// [`Released::still_in_use`] counts them.
pub fn release(sys: &dyn Sys, reservation: &Reservation) -> Result<Released, Error> {
    let Reservation { node, size, added } = *reservation;
    if added == 0 {
        return Ok(Released {
            node,
            size,
            returned: 0,
            still_in_use: 0,
        });
    }
    let pools = sysfs::pools(sys)?;
    let pool = find_pool(&pools, node, size)?;
    let nr = pool.nr_path();
    let surplus = pool.dir.join("surplus_hugepages");
    let before = read_count(sys, &nr)?;
    let surplus_before = read_count(sys, &surplus)?;
    let target = before.saturating_sub(added);
    write_count(sys, &nr, target)?;
    let after = read_count(sys, &nr)?;
    let surplus_after = read_count(sys, &surplus)?;
    // Pages the kernel could not free stay either in the pool (older kernels) or become surplus.
    let became_surplus = surplus_after.saturating_sub(surplus_before);
    let still_in_use = after.saturating_sub(target) + became_surplus;
    let returned = before.saturating_sub(after).saturating_sub(became_surplus);
    Ok(Released {
        node,
        size,
        returned,
        still_in_use,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::MIB;
    use crate::testing::FakeSys;

    const M2: PageSize = PageSize::TWO_MIB;
    const G1: PageSize = PageSize::ONE_GIB;
    const N0: NodeId = NodeId(0);

    fn counts(sys: &FakeSys, node: NodeId, size: PageSize) -> (u64, u64, u64) {
        let pools = sysfs::pools(sys).unwrap();
        let p = find_pool(&pools, node, size).unwrap();
        (p.total, p.free, p.surplus)
    }

    #[test]
    fn reserve_adds_pages_and_records_what_it_added() {
        let sys = FakeSys::new().pool(N0, M2, 10, 2).pool(NodeId(1), M2, 0, 0);
        let r = reserve(&sys, N0, M2, 100).unwrap();
        assert_eq!(
            r,
            Reservation {
                node: N0,
                size: M2,
                added: 100
            }
        );
        assert_eq!(counts(&sys, N0, M2), (110, 102, 0));
        assert_eq!(counts(&sys, NodeId(1), M2), (0, 0, 0));
    }

    #[test]
    fn short_reservation_is_rolled_back_and_says_what_to_do() {
        let sys = FakeSys::new().pool(N0, G1, 1, 1).pool(N0, M2, 0, 0);
        sys.grant_at_most(N0, G1, 3);
        sys.set_file(
            "/sys/devices/system/node/node0/meminfo",
            "Node 0 MemFree:  1572864 kB\n",
        );
        let err = reserve(&sys, N0, G1, 4).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotEnoughMemory { node: N0, size: G1, requested: 4, got: 2, free_bytes: Some(b) }
                    if b == 1536 * MIB
            ),
            "{err}"
        );
        assert_eq!(counts(&sys, N0, G1), (1, 1, 0), "rolled back");
        let msg = err.to_string();
        for part in [
            "gave only 2 of 4 more 1G pages on node0",
            "1.5 GiB of memory free there",
            "rolled back",
            "hugepagesz=1G hugepages=",
            "--size 2M",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        // 2M pages get no "use 2M pages" advice.
        sys.grant_at_most(N0, M2, 0);
        let msg = reserve(&sys, N0, M2, 1).unwrap_err().to_string();
        assert!(!msg.contains("--size 2M"), "{msg}");
    }

    #[test]
    fn ensure_free_counts_pages_already_free() {
        let sys = FakeSys::new().pool(N0, M2, 100, 60);
        let r = ensure_free(&sys, N0, M2, 64).unwrap();
        assert_eq!(r.added, 4);
        assert_eq!(counts(&sys, N0, M2), (104, 64, 0));
        let again = ensure_free(&sys, N0, M2, 64).unwrap();
        assert_eq!(again.added, 0);
        assert_eq!(sys.writes_to_sysfs(), 1, "nothing missing, nothing written");
    }

    #[test]
    fn release_takes_back_exactly_what_was_added() {
        let sys = FakeSys::new().pool(N0, M2, 8, 8);
        let r = reserve(&sys, N0, M2, 32).unwrap();
        // Someone else reserves more meanwhile; their pages must stay.
        sys.write(
            std::path::Path::new(
                "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            ),
            "50",
        )
        .unwrap();
        let done = release(&sys, &r).unwrap();
        assert_eq!(
            done,
            Released {
                node: N0,
                size: M2,
                returned: 32,
                still_in_use: 0
            }
        );
        assert_eq!(counts(&sys, N0, M2), (18, 18, 0));
    }

    #[test]
    fn release_of_pages_in_use_reports_them() {
        let sys = FakeSys::new().pool(N0, M2, 0, 0);
        let r = reserve(&sys, N0, M2, 10).unwrap();
        sys.use_pages(N0, M2, 4);
        let done = release(&sys, &r).unwrap();
        assert_eq!((done.returned, done.still_in_use), (6, 4));
        assert_eq!(counts(&sys, N0, M2), (0, 0, 4));
        assert!(
            done.to_string().contains("4 more are still in use"),
            "{done}"
        );
    }

    #[test]
    fn release_never_goes_below_zero() {
        let sys = FakeSys::new().pool(N0, M2, 3, 3);
        let r = Reservation {
            node: N0,
            size: M2,
            added: 10,
        };
        let done = release(&sys, &r).unwrap();
        assert_eq!(done.returned, 3);
        assert_eq!(counts(&sys, N0, M2), (0, 0, 0));
    }

    #[test]
    fn writing_without_root_says_run_as_root() {
        let sys = FakeSys::new().pool(N0, M2, 0, 0).euid(1000);
        let err = reserve(&sys, N0, M2, 1).unwrap_err();
        assert!(matches!(err, Error::NotRoot { euid: 1000, .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("writing /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages needs root")
                && msg.contains("run it as root"),
            "{msg}"
        );
    }

    #[test]
    fn unsupported_page_size_lists_the_sizes_the_kernel_has() {
        let sys = FakeSys::new().flat_pool(M2, 0, 0);
        let err = ensure_free(&sys, N0, G1, 1).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedPageSize { size: G1, available } if available == &[M2]),
            "{err}"
        );
        assert_eq!(sys.writes_to_sysfs(), 0);
    }

    #[test]
    fn ensure_plan_undoes_earlier_nodes_when_a_later_one_fails() {
        let sys = FakeSys::new().pool(N0, M2, 0, 0).pool(NodeId(1), M2, 0, 0);
        sys.grant_at_most(NodeId(1), M2, 1);
        let plans = crate::plan(M2, &[(N0, 8 * MIB), (NodeId(1), 8 * MIB)]);
        let err = ensure_plan(&sys, &plans).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotEnoughMemory {
                    node: NodeId(1),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(counts(&sys, N0, M2), (0, 0, 0));
        assert_eq!(counts(&sys, NodeId(1), M2), (0, 0, 0));
        sys.grant_at_most(NodeId(1), M2, 100);
        let done = ensure_plan(&sys, &plans).unwrap();
        assert_eq!(done.iter().map(|r| r.added).collect::<Vec<_>>(), [4, 4]);
    }
}
