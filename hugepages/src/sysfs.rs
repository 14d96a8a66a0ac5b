//! Discovery of the kernel's hugepage pools from sysfs.
//!
//! A NUMA kernel has one pool per node and page size, under
//! `/sys/devices/system/node/node<N>/hugepages/hugepages-<kB>kB/`, each with `nr_hugepages` (the
//! persistent pool; writing it grows or shrinks the pool), `free_hugepages` and
//! `surplus_hugepages`. A kernel without NUMA support has no `/sys/devices/system/node`; its one
//! pool per size lives under `/sys/kernel/mm/hugepages/hugepages-<kB>kB/` and is reported as node 0.
//! [`Pool::dir`] says which of the two a pool came from, so writes go to the same place reads did.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::size::KIB;
use crate::{Error, NodeId, PageSize, Sys};

/// Per-node pools live below this directory on NUMA kernels.
pub const NODE_ROOT: &str = "/sys/devices/system/node";
/// The pools of a non-NUMA kernel (and the machine-wide totals of a NUMA one).
pub const FLAT_ROOT: &str = "/sys/kernel/mm/hugepages";
pub const MEMINFO_PATH: &str = "/proc/meminfo";

/// One hugepage pool: a page size on a NUMA node, with the kernel's counters as last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub node: NodeId,
    pub size: PageSize,
    /// Persistent pages in the pool (`nr_hugepages`), free or in use.
    pub total: u64,
    /// Pages nobody has mapped yet (`free_hugepages`).
    pub free: u64,
    /// Pages beyond `total` the kernel handed out on overcommit or kept in use after the pool was
    /// lowered (`surplus_hugepages`); they return to the kernel once freed.
    pub surplus: u64,
    /// The sysfs directory holding the counters.
    pub dir: PathBuf,
}

impl Pool {
    /// Pages mapped by some process or held by a file in a hugetlbfs.
    pub fn in_use(&self) -> u64 {
        (self.total + self.surplus).saturating_sub(self.free)
    }

    pub fn nr_path(&self) -> PathBuf {
        self.dir.join("nr_hugepages")
    }
}

/// Every pool on this host, sorted by node and size.
pub fn pools(sys: &dyn Sys) -> Result<Vec<Pool>, Error> {
    let mut pools = match node_pools(sys)? {
        Some(pools) if !pools.is_empty() => pools,
        _ => pools_in(sys, Path::new(FLAT_ROOT), NodeId(0))?,
    };
    pools.sort_by_key(|p| (p.node, p.size));
    Ok(pools)
}

/// The pool for `node` and `size`, or the error that says which sizes and nodes exist.
pub(crate) fn find_pool(pools: &[Pool], node: NodeId, size: PageSize) -> Result<&Pool, Error> {
    if let Some(pool) = pools.iter().find(|p| p.node == node && p.size == size) {
        return Ok(pool);
    }
    if !pools.iter().any(|p| p.size == size) {
        return Err(Error::UnsupportedPageSize {
            size,
            available: sizes(pools),
        });
    }
    let mut nodes: Vec<NodeId> = pools.iter().map(|p| p.node).collect();
    nodes.dedup();
    Err(Error::UnknownNode { node, nodes })
}

/// The distinct page sizes among `pools`, smallest first.
pub(crate) fn sizes(pools: &[Pool]) -> Vec<PageSize> {
    let mut sizes: Vec<PageSize> = pools.iter().map(|p| p.size).collect();
    sizes.sort();
    sizes.dedup();
    sizes
}

/// The pools of every `node<N>` directory, or `None` on a kernel without NUMA.
fn node_pools(sys: &dyn Sys) -> Result<Option<Vec<Pool>>, Error> {
    let root = Path::new(NODE_ROOT);
    let names = match sys.read_dir(root) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("listing", root, source)),
    };
    let mut pools = Vec::new();
    for node in names.iter().filter_map(|n| parse_node_dir(n)) {
        let dir = root.join(format!("node{}", node.0)).join("hugepages");
        pools.extend(pools_in(sys, &dir, node)?);
    }
    Ok(Some(pools))
}

/// The pools in one `hugepages` directory; none if the directory is missing (a memory-less node,
/// or a kernel without hugetlb).
fn pools_in(sys: &dyn Sys, dir: &Path, node: NodeId) -> Result<Vec<Pool>, Error> {
    let names = match sys.read_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error("listing", dir, source)),
    };
    let mut pools = Vec::new();
    for (name, size) in names
        .iter()
        .filter_map(|n| parse_pool_dir(n).map(|s| (n, s)))
    {
        let dir = dir.join(name);
        pools.push(Pool {
            node,
            size,
            total: read_count(sys, &dir.join("nr_hugepages"))?,
            free: read_count(sys, &dir.join("free_hugepages"))?,
            surplus: read_count(sys, &dir.join("surplus_hugepages"))?,
            dir,
        });
    }
    Ok(pools)
}

/// `node3` → node 3; other entries of the node directory (`online`, `has_cpu`, …) → `None`.
pub(crate) fn parse_node_dir(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix("node")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(NodeId)
}

/// `hugepages-2048kB` → 2M.
pub(crate) fn parse_pool_dir(name: &str) -> Option<PageSize> {
    let kib: u64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    PageSize::from_bytes(kib.checked_mul(KIB)?).ok()
}

/// Reads a sysfs counter such as `nr_hugepages`.
pub(crate) fn read_count(sys: &dyn Sys, path: &Path) -> Result<u64, Error> {
    let content = sys
        .read_to_string(path)
        .map_err(|source| io_error("reading", path, source))?;
    content.trim().parse().map_err(|_| Error::Parse {
        what: "a page count",
        path: path.to_owned(),
        content,
    })
}

/// Writes a sysfs counter; a permission error becomes [`Error::NotRoot`].
pub(crate) fn write_count(sys: &dyn Sys, path: &Path, value: u64) -> Result<(), Error> {
    sys.write(path, &value.to_string())
        .map_err(|source| Error::privileged("writing", path.to_owned(), sys.euid(), source))
}

/// The default hugepage size (`Hugepagesize:` in /proc/meminfo): the size of a hugetlbfs mounted
/// without a `pagesize=` option, and of `vm.nr_hugepages`.
pub fn default_page_size(sys: &dyn Sys) -> Result<PageSize, Error> {
    let path = Path::new(MEMINFO_PATH);
    let text = sys
        .read_to_string(path)
        .map_err(|source| io_error("reading", path, source))?;
    meminfo_kib(&text, "Hugepagesize")
        .and_then(|kib| PageSize::from_bytes(kib * KIB).ok())
        .ok_or_else(|| Error::Parse {
            what: "the Hugepagesize line",
            path: path.to_owned(),
            content: text,
        })
}

/// Free memory on `node`, from the node's `meminfo` or, without NUMA, from /proc/meminfo. Only
/// used to explain a failure, so any problem reading it yields `None`.
pub(crate) fn free_bytes(sys: &dyn Sys, node: NodeId) -> Option<u64> {
    let node_meminfo = Path::new(NODE_ROOT)
        .join(format!("node{}", node.0))
        .join("meminfo");
    if let Ok(text) = sys.read_to_string(&node_meminfo) {
        // Lines look like `Node 0 MemFree:  123456 kB`.
        let prefix = format!("Node {} ", node.0);
        let stripped: String = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect::<Vec<_>>()
            .join("\n");
        return meminfo_kib(&stripped, "MemFree").map(|kib| kib * KIB);
    }
    let text = sys.read_to_string(Path::new(MEMINFO_PATH)).ok()?;
    meminfo_kib(&text, "MemFree").map(|kib| kib * KIB)
}

/// The number on the `key:` line of a meminfo text (in kB for sizes, a count for others).
pub(crate) fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, rest) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeSys;

    const M2: PageSize = PageSize::TWO_MIB;
    const G1: PageSize = PageSize::ONE_GIB;

    #[test]
    fn directory_names_parse() {
        assert_eq!(parse_pool_dir("hugepages-2048kB"), Some(M2));
        assert_eq!(parse_pool_dir("hugepages-1048576kB"), Some(G1));
        assert_eq!(parse_pool_dir("hugepages-2048"), None);
        assert_eq!(parse_pool_dir("hugepages-3000kB"), None);
        assert_eq!(parse_pool_dir("demote"), None);
        assert_eq!(parse_node_dir("node0"), Some(NodeId(0)));
        assert_eq!(parse_node_dir("node12"), Some(NodeId(12)));
        for other in ["online", "possible", "has_cpu", "node", "nodex", "power"] {
            assert_eq!(parse_node_dir(other), None, "{other}");
        }
    }

    #[test]
    fn numa_layout_gives_one_pool_per_node_and_size() {
        let sys = FakeSys::new()
            .pool(NodeId(1), M2, 10, 4)
            .pool(NodeId(0), M2, 512, 500)
            .pool(NodeId(0), G1, 2, 2)
            .pool(NodeId(1), G1, 0, 0);
        // Non-node entries of the node directory are ignored.
        sys.set_file("/sys/devices/system/node/online", "0-1\n");
        let pools = pools(&sys).unwrap();
        let got: Vec<_> = pools
            .iter()
            .map(|p| (p.node.0, p.size, p.total, p.free, p.in_use()))
            .collect();
        assert_eq!(
            got,
            [
                (0, M2, 512, 500, 12),
                (0, G1, 2, 2, 0),
                (1, M2, 10, 4, 6),
                (1, G1, 0, 0, 0)
            ]
        );
        assert_eq!(
            pools[0].nr_path(),
            PathBuf::from("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")
        );
    }

    #[test]
    fn kernel_without_numa_reports_the_flat_pools_as_node_0() {
        let sys = FakeSys::new().flat_pool(M2, 64, 64).flat_pool(G1, 0, 0);
        let pools = pools(&sys).unwrap();
        assert_eq!(pools.len(), 2);
        assert!(pools.iter().all(|p| p.node == NodeId(0)));
        assert_eq!(
            pools[0].dir,
            PathBuf::from("/sys/kernel/mm/hugepages/hugepages-2048kB")
        );
        assert_eq!((pools[0].total, pools[0].free), (64, 64));
    }

    #[test]
    fn garbage_in_a_counter_is_a_parse_error_naming_the_file() {
        let sys = FakeSys::new().pool(NodeId(0), M2, 1, 1);
        let path = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages";
        sys.set_file(path, "lots\n");
        let err = pools(&sys).unwrap_err();
        assert!(
            matches!(&err, Error::Parse { path: p, content, .. } if p == Path::new(path) && content == "lots\n"),
            "{err}"
        );
    }

    #[test]
    fn unknown_size_lists_the_sizes_and_unknown_node_lists_the_nodes() {
        let sys = FakeSys::new()
            .pool(NodeId(0), M2, 0, 0)
            .pool(NodeId(1), M2, 0, 0);
        let pools = pools(&sys).unwrap();
        let err = find_pool(&pools, NodeId(0), G1).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedPageSize { size: G1, available } if available == &[M2]),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("no 1G hugepage pool (it has 2M)") && msg.contains("pdpe1gb"),
            "{msg}"
        );
        let err = find_pool(&pools, NodeId(7), M2).unwrap_err();
        assert!(
            err.to_string()
                .contains("no NUMA node7 with hugepages on this host (it has node0, node1)"),
            "{err}"
        );
    }

    #[test]
    fn meminfo_gives_the_default_size_and_free_memory() {
        let text = "MemTotal:       24683520 kB\nMemFree:        19948000 kB\n\
                    HugePages_Total:       0\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo_kib(text, "Hugepagesize"), Some(2048));
        assert_eq!(meminfo_kib(text, "HugePages_Total"), Some(0));
        assert_eq!(meminfo_kib(text, "Missing"), None);
        let sys = FakeSys::new().flat_pool(M2, 0, 0);
        sys.set_file(MEMINFO_PATH, text);
        assert_eq!(default_page_size(&sys).unwrap(), M2);
        assert_eq!(free_bytes(&sys, NodeId(0)), Some(19_948_000 * KIB));
        sys.set_file(
            "/sys/devices/system/node/node1/meminfo",
            "Node 1 MemTotal: 100 kB\nNode 1 MemFree: 40 kB\n",
        );
        assert_eq!(free_bytes(&sys, NodeId(1)), Some(40 * KIB));
    }
}
