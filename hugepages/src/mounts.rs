//! hugetlbfs mounts: reading them from the mount table, and mounting one when a page size has
//! none. DPDK's EAL maps its hugepages through files in a hugetlbfs of each page size it uses
//! (unless run with `--in-memory`), and refuses to start when pages are reserved but no such
//! mount exists.
//!
//! [`ensure_mounted`] reuses any hugetlbfs of the right size, wherever it is mounted, and says
//! whether it mounted one itself, so a later release unmounts only what this crate mounted.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::MOUNTS_PATH;
use crate::sysfs::{self, io_error};
use crate::{Error, PageSize, Sys};

/// A mounted hugetlbfs and the page size its files are backed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub path: PathBuf,
    pub page_size: PageSize,
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.page_size)
    }
}

/// What [`ensure_mounted`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub mount: Mount,
    /// `true` when this call mounted it; `false` when an existing mount was reused.
    pub ours: bool,
}

/// One line of the mount table, with the fields this crate looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) target: PathBuf,
    pub(crate) fstype: String,
    pub(crate) options: String,
}

/// Every hugetlbfs mounted in this process's mount namespace.
pub fn mounts(sys: &dyn Sys) -> Result<Vec<Mount>, Error> {
    let table = mount_table(sys)?;
    hugetlbfs_mounts(sys, &table)
}

/// Returns a hugetlbfs of page size `size`: an existing one (preferring one at `path`), or one
/// newly mounted at `path`, creating the directory first.
pub fn ensure_mounted(sys: &dyn Sys, size: PageSize, path: &Path) -> Result<Mounted, Error> {
    let pools = sysfs::pools(sys)?;
    let available = sysfs::sizes(&pools);
    if !available.contains(&size) {
        return Err(Error::UnsupportedPageSize { size, available });
    }
    let table = mount_table(sys)?;
    let existing = hugetlbfs_mounts(sys, &table)?;
    let reuse = existing
        .iter()
        .filter(|m| m.page_size == size)
        .min_by_key(|m| m.path != path);
    if let Some(mount) = reuse {
        return Ok(Mounted {
            mount: mount.clone(),
            ours: false,
        });
    }
    // The last entry for a target is the one on top; mounting over it would hide it.
    if let Some(taken) = table.iter().rev().find(|e| e.target == path) {
        return Err(Error::MountPathTaken {
            path: path.to_owned(),
            size,
            fstype: taken.fstype.clone(),
        });
    }
    sys.create_dir_all(path)
        .map_err(|source| Error::privileged("creating", path.to_owned(), sys.euid(), source))?;
    sys.mount_hugetlbfs(path, size).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            Error::NotRoot {
                op: "mounting hugetlbfs on",
                path: path.to_owned(),
                euid: sys.euid(),
            }
        } else {
            Error::Mount {
                path: path.to_owned(),
                size,
                source,
            }
        }
    })?;
    Ok(Mounted {
        mount: Mount {
            path: path.to_owned(),
            page_size: size,
        },
        ours: true,
    })
}

/// Unmounts `mount`; fails with [`Error::Unmount`] while a process still uses it.
pub fn unmount(sys: &dyn Sys, mount: &Mount) -> Result<(), Error> {
    sys.unmount(&mount.path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            Error::NotRoot {
                op: "unmounting",
                path: mount.path.clone(),
                euid: sys.euid(),
            }
        } else {
            Error::Unmount {
                path: mount.path.clone(),
                source,
            }
        }
    })
}

fn mount_table(sys: &dyn Sys) -> Result<Vec<MountEntry>, Error> {
    let text = sys
        .mounts()
        .map_err(|source| io_error("reading", Path::new(MOUNTS_PATH), source))?;
    Ok(parse_mount_table(&text))
}

/// The hugetlbfs entries of `table` with their page sizes. A mount without a `pagesize=` option
/// (older kernels omit it for the default size) has the default size from /proc/meminfo, which is
/// read only when needed.
fn hugetlbfs_mounts(sys: &dyn Sys, table: &[MountEntry]) -> Result<Vec<Mount>, Error> {
    let mut default = None;
    let mut mounts = Vec::new();
    for entry in table.iter().filter(|e| e.fstype == "hugetlbfs") {
        let page_size = match pagesize_option(&entry.options) {
            Some(Ok(size)) => size,
            Some(Err(value)) => {
                return Err(Error::Parse {
                    what: "the pagesize option of a hugetlbfs mount",
                    path: PathBuf::from(MOUNTS_PATH),
                    content: value.to_owned(),
                });
            }
            None => match default {
                Some(size) => size,
                None => *default.insert(sysfs::default_page_size(sys)?),
            },
        };
        mounts.push(Mount {
            path: entry.target.clone(),
            page_size,
        });
    }
    Ok(mounts)
}

/// The `pagesize=` option: `None` if absent, `Err(value)` if it does not parse.
fn pagesize_option(options: &str) -> Option<Result<PageSize, &str>> {
    let value = options
        .split(',')
        .find_map(|o| o.strip_prefix("pagesize="))?;
    Some(value.parse().map_err(|_| value))
}

/// Parses `/proc/self/mounts` text (`source target fstype options dump pass` per line, with
/// spaces and other special characters in paths escaped as `\ooo` octal). Short lines are skipped.
pub(crate) fn parse_mount_table(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let _source = fields.next()?;
            let target = fields.next()?;
            let fstype = fields.next()?;
            let options = fields.next()?;
            Some(MountEntry {
                target: PathBuf::from(unescape_octal(target)),
                fstype: fstype.to_owned(),
                options: options.to_owned(),
            })
        })
        .collect()
}

/// Undoes the kernel's `\040`-style escaping of mount table fields.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use crate::testing::FakeSys;

    const M2: PageSize = PageSize::TWO_MIB;
    const G1: PageSize = PageSize::ONE_GIB;

    #[test]
    fn mount_table_lines_parse_with_escapes() {
        let text = "proc /proc proc rw,nosuid 0 0\n\
                    nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
                    none /mnt/huge\\040pages hugetlbfs rw,pagesize=1024M 0 0\n\
                    broken line\n";
        let table = parse_mount_table(text);
        assert_eq!(table.len(), 3);
        assert_eq!(table[2].target, PathBuf::from("/mnt/huge pages"));
        assert_eq!(table[1].fstype, "hugetlbfs");
        assert_eq!(pagesize_option(&table[1].options), Some(Ok(M2)));
        assert_eq!(pagesize_option(&table[2].options), Some(Ok(G1)));
        assert_eq!(pagesize_option("rw,relatime"), None);
        assert_eq!(pagesize_option("rw,pagesize=3M"), Some(Err("3M")));
        assert_eq!(unescape_octal("a\\134b\\"), "a\\b\\");
    }

    #[test]
    fn hugetlbfs_without_pagesize_has_the_default_size() {
        let sys = FakeSys::new().flat_pool(M2, 0, 0).flat_pool(G1, 0, 0);
        sys.set_file(sysfs::MEMINFO_PATH, "Hugepagesize:    1048576 kB\n");
        sys.add_mount_line("hugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0");
        sys.add_mount_line("nodev /mnt/h2 hugetlbfs rw,pagesize=2M 0 0");
        let got = mounts(&sys).unwrap();
        assert_eq!(
            got,
            [
                Mount {
                    path: "/dev/hugepages".into(),
                    page_size: G1
                },
                Mount {
                    path: "/mnt/h2".into(),
                    page_size: M2
                },
            ]
        );
    }

    #[test]
    fn missing_mount_is_created_and_recorded_as_ours() {
        let sys = FakeSys::new().pool(NodeId(0), M2, 0, 0);
        let m = ensure_mounted(&sys, M2, Path::new("/dev/hugepages")).unwrap();
        assert!(m.ours);
        assert_eq!(m.mount.page_size, M2);
        assert!(sys.is_dir(Path::new("/dev/hugepages")));
        assert_eq!(
            mounts(&sys).unwrap(),
            [Mount {
                path: "/dev/hugepages".into(),
                page_size: M2
            }]
        );
    }

    #[test]
    fn existing_mount_of_the_size_is_reused_wherever_it_is() {
        let sys = FakeSys::new()
            .pool(NodeId(0), M2, 0, 0)
            .pool(NodeId(0), G1, 0, 0);
        sys.add_mount_line("nodev /mnt/huge1g hugetlbfs rw,pagesize=1024M 0 0");
        sys.add_mount_line("nodev /mnt/huge2m hugetlbfs rw,pagesize=2M 0 0");
        let m = ensure_mounted(&sys, M2, Path::new("/dev/hugepages")).unwrap();
        assert!(!m.ours);
        assert_eq!(m.mount.path, PathBuf::from("/mnt/huge2m"));
        assert_eq!(sys.mount_calls(), 0);
        assert!(!sys.is_dir(Path::new("/dev/hugepages")));
    }

    #[test]
    fn a_path_with_another_mount_is_refused() {
        let sys = FakeSys::new()
            .pool(NodeId(0), M2, 0, 0)
            .pool(NodeId(0), G1, 0, 0);
        sys.add_mount_line("nodev /dev/hugepages hugetlbfs rw,pagesize=2M 0 0");
        let err = ensure_mounted(&sys, G1, Path::new("/dev/hugepages")).unwrap_err();
        assert!(
            matches!(&err, Error::MountPathTaken { fstype, .. } if fstype == "hugetlbfs"),
            "{err}"
        );
        assert!(err.to_string().contains("--mount"), "{err}");
    }

    #[test]
    fn mounting_an_unsupported_size_lists_the_sizes() {
        let sys = FakeSys::new().pool(NodeId(0), M2, 0, 0);
        let err = ensure_mounted(&sys, G1, Path::new("/dev/hugepages1G")).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedPageSize { available, .. } if available == &[M2]),
            "{err}"
        );
        assert_eq!(sys.mount_calls(), 0);
    }

    #[test]
    fn mounting_needs_root() {
        let sys = FakeSys::new().pool(NodeId(0), M2, 0, 0).euid(1000);
        sys.create_dir("/dev/hugepages");
        let err = ensure_mounted(&sys, M2, Path::new("/dev/hugepages")).unwrap_err();
        assert!(matches!(err, Error::NotRoot { euid: 1000, .. }), "{err}");
        assert!(err.to_string().contains("run it as root"), "{err}");
    }

    #[test]
    fn busy_unmount_says_how_to_find_the_user() {
        let sys = FakeSys::new().pool(NodeId(0), M2, 0, 0);
        let m = ensure_mounted(&sys, M2, Path::new("/dev/hugepages")).unwrap();
        sys.set_busy(Path::new("/dev/hugepages"), true);
        let err = unmount(&sys, &m.mount).unwrap_err();
        assert!(
            err.to_string().contains("fuser -vm /dev/hugepages"),
            "{err}"
        );
        sys.set_busy(Path::new("/dev/hugepages"), false);
        unmount(&sys, &m.mount).unwrap();
        assert!(mounts(&sys).unwrap().is_empty());
    }
}
