//! The one error type of this crate. Its messages reach operators through the `hugepages` CLI and
//! the gateway's preflight checks, so each says what failed, with which value, and what to do.

use std::fmt::{self, Display};
use std::io;
use std::path::PathBuf;

use crate::size::format_bytes;
use crate::{Mount, NodeId, PageSize};

/// Why a hugepage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file, or listing a directory, failed.
    #[error("{op} {} failed: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a write or a mount for lack of privilege.
    #[error(
        "{op} {} needs root (CAP_SYS_ADMIN and write access to sysfs), but this process runs as \
         uid {euid}: run it as root, e.g. with sudo",
        .path.display()
    )]
    NotRoot {
        op: &'static str,
        path: PathBuf,
        euid: u32,
    },
    /// A kernel file held something this crate cannot read.
    #[error(
        "could not read {what} from {}: found {content:?}; this kernel's format is not one this \
         tool knows, please report it together with the file's content",
        .path.display()
    )]
    Parse {
        what: &'static str,
        path: PathBuf,
        content: String,
    },
    /// The kernel has no pool of this page size.
    #[error(
        "this kernel has no {size} hugepage pool ({}): use one of the sizes it has; 1G pages also \
         need CPU support (the `pdpe1gb` flag in /proc/cpuinfo) and, on some kernels, \
         `hugepagesz=1G` on the kernel command line",
        available_sizes(.available)
    )]
    UnsupportedPageSize {
        size: PageSize,
        available: Vec<PageSize>,
    },
    /// The node does not exist or has no hugepage pools.
    #[error(
        "there is no NUMA {node} with hugepages on this host (it has {}): pass one of those with --node",
        list(.nodes)
    )]
    UnknownNode { node: NodeId, nodes: Vec<NodeId> },
    /// The kernel could not find memory for all the pages asked for; nothing was kept.
    #[error(
        "the kernel gave only {got} of {requested} more {size} pages on {node} ({}), so the \
         reservation was rolled back: free memory on that node (stop memory-hungry processes, \
         `echo 3 > /proc/sys/vm/drop_caches`, `echo 1 > /proc/sys/vm/compact_memory`), or reserve \
         the pages at boot with the kernel arguments `hugepagesz={size} hugepages=<count>`{}",
        free_memory(*.free_bytes),
        smaller_size_hint(*.size)
    )]
    NotEnoughMemory {
        node: NodeId,
        size: PageSize,
        requested: u64,
        got: u64,
        /// Free memory on the node when the kernel gave up, if the kernel reports it.
        free_bytes: Option<u64>,
    },
    /// Giving back the pages of a short reservation failed, so some stay reserved.
    #[error(
        "after a short reservation, restoring {previous} in {} failed: {source}; restore it by \
         hand as root: echo {previous} > {}",
        .path.display(),
        .path.display()
    )]
    RollbackFailed {
        path: PathBuf,
        previous: u64,
        #[source]
        source: io::Error,
    },
    /// A node has fewer free pages than a plan needs.
    #[error(
        "{node} has {free} free {size} pages but {needed} are needed: run \
         `hugepages reserve --size {size} --pages {needed} --node {}`",
        .node.0
    )]
    TooFewFree {
        node: NodeId,
        size: PageSize,
        free: u64,
        needed: u64,
    },
    /// No hugetlbfs of this page size is mounted; DPDK's EAL refuses to start without one.
    #[error(
        "no hugetlbfs is mounted for {size} pages ({}), and DPDK's EAL will not start without one: \
         run `hugepages reserve --size {size}` (it mounts one) or \
         `mount -t hugetlbfs -o pagesize={size} nodev {}`",
        mounted(.mounts),
        .size.default_mount_path().display()
    )]
    MountMissing { size: PageSize, mounts: Vec<Mount> },
    /// The chosen mount point already has something mounted on it.
    #[error(
        "{} is already a mount point ({fstype}), so a {size} hugetlbfs cannot go there: pass \
         another directory with --mount",
        .path.display()
    )]
    MountPathTaken {
        path: PathBuf,
        size: PageSize,
        fstype: String,
    },
    /// mount(2) failed.
    #[error(
        "`mount -t hugetlbfs -o pagesize={size} nodev {}` failed: {source}; check that the \
         directory is not in use and that the kernel has {size} pages (`hugepages status`)",
        .path.display()
    )]
    Mount {
        path: PathBuf,
        size: PageSize,
        #[source]
        source: io::Error,
    },
    /// umount(2) failed, typically because a process still has files open there.
    #[error(
        "unmounting {} failed: {source}; if it is busy, stop the processes using it \
         (`fuser -vm {}` lists them) and run `hugepages release` again",
        .path.display(),
        .path.display()
    )]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The state file that records what `reserve` added is not valid JSON of the expected shape.
    #[error(
        "state file {} is not valid ({source}): it records what `hugepages reserve` added; fix \
         it or remove it (pages it recorded then stay reserved until nr_hugepages is lowered by \
         hand)",
        .path.display()
    )]
    StateFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{input:?} is not a hugepage size ({reason}): write it like 2M, 1G, 2MiB or 2048kB")]
    InvalidPageSize { input: String, reason: &'static str },
    #[error("{input:?} is not a byte count: write it like 512M, 1G, 4GiB or 1073741824")]
    InvalidBytes { input: String },
    #[error("{input:?} is not a NUMA node: write it like 0 or node0")]
    InvalidNode { input: String },
}

impl Error {
    /// Wraps an I/O failure of a write or mount, turning a permission error into [`Error::NotRoot`].
    pub(crate) fn privileged(
        op: &'static str,
        path: PathBuf,
        euid: u32,
        source: io::Error,
    ) -> Self {
        if source.kind() == io::ErrorKind::PermissionDenied {
            Self::NotRoot { op, path, euid }
        } else {
            Self::Io { op, path, source }
        }
    }
}

fn list<T: Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn available_sizes(sizes: &[PageSize]) -> String {
    if sizes.is_empty() {
        "it has no hugepage pools at all; the kernel was built without CONFIG_HUGETLBFS".to_owned()
    } else {
        format!("it has {}", list(sizes))
    }
}

fn free_memory(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{} of memory free there", format_bytes(b)),
        None => "free memory unknown".to_owned(),
    }
}

fn smaller_size_hint(size: PageSize) -> impl Display {
    struct Hint(bool);
    impl Display for Hint {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.0 {
                // Large pages need large physically contiguous blocks, which fragmentation
                // destroys first; 2M pages are usually still available.
                f.write_str(", or use 2M pages (--size 2M), which need far less contiguous memory")
            } else {
                Ok(())
            }
        }
    }
    Hint(size > PageSize::TWO_MIB)
}

fn mounted(mounts: &[Mount]) -> String {
    if mounts.is_empty() {
        "no hugetlbfs is mounted at all".to_owned()
    } else {
        format!("mounted: {}", list(mounts))
    }
}
