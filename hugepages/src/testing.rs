//! An in-memory kernel for tests: [`FakeSys`] implements [`Sys`] over a map of files, a mount
//! table and a model of how the kernel grows and shrinks hugepage pools, so every piece of logic
//! in this crate (and in crates that drive it) runs without root and without touching the host.
//!
//! Built with `cfg(test)` and with the `testing` feature. Build one with the consuming builders
//! ([`FakeSys::pool`], [`FakeSys::flat_pool`], [`FakeSys::euid`]), then steer it during a test
//! through the `&self` methods ([`FakeSys::grant_at_most`], [`FakeSys::use_pages`], …).
//!
//! What the model does, like the kernel:
//! - writing `nr_hugepages` grows the pool up to the limit set with [`FakeSys::grant_at_most`]
//!   and silently stops there; shrinking frees free pages first and turns pages in use into
//!   surplus pages;
//! - writes to sysfs and mounts fail with `EACCES`/`EPERM` unless the effective uid is 0, and a
//!   process that is not root may create files and directories only under `/tmp`;
//! - sysfs files cannot be created, a mount needs an existing directory and a page size with a
//!   pool, and unmounting a busy mount fails with `EBUSY`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::sysfs::{FLAT_ROOT, MEMINFO_PATH, NODE_ROOT};
use crate::{NodeId, PageSize, Sys};

/// A fake kernel and filesystem; see the module docs for what it models.
#[derive(Debug)]
pub struct FakeSys {
    inner: RefCell<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: BTreeMap<PathBuf, String>,
    dirs: BTreeSet<PathBuf>,
    mount_lines: Vec<String>,
    busy: BTreeSet<PathBuf>,
    /// Most pages the kernel will put in a pool, per pool directory.
    limits: BTreeMap<PathBuf, u64>,
    euid: u32,
    sysfs_writes: usize,
    mount_calls: usize,
}

impl Default for FakeSys {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSys {
    /// A root process on a host with no hugepage pools, no hugetlbfs mounts, 8 GiB free and a
    /// default hugepage size of 2M.
    pub fn new() -> Self {
        let sys = Self {
            inner: RefCell::new(Inner {
                files: BTreeMap::new(),
                dirs: BTreeSet::from([PathBuf::from("/")]),
                mount_lines: vec![
                    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0".to_owned(),
                    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0".to_owned(),
                ],
                busy: BTreeSet::new(),
                limits: BTreeMap::new(),
                euid: 0,
                sysfs_writes: 0,
                mount_calls: 0,
            }),
        };
        sys.set_file(
            MEMINFO_PATH,
            "MemTotal:       16777216 kB\nMemFree:         8388608 kB\nHugepagesize:       2048 kB\n",
        );
        sys.create_dir("/tmp");
        sys
    }

    /// Adds the pool of `size` on NUMA `node` with `total` pages of which `free` are free.
    pub fn pool(self, node: NodeId, size: PageSize, total: u64, free: u64) -> Self {
        let dir = Path::new(NODE_ROOT)
            .join(format!("node{}", node.0))
            .join("hugepages")
            .join(format!("hugepages-{}kB", size.kib()));
        self.add_pool(&dir, total, free);
        self
    }

    /// Adds a pool the way a kernel without NUMA has it (`/sys/kernel/mm/hugepages`).
    pub fn flat_pool(self, size: PageSize, total: u64, free: u64) -> Self {
        let dir = Path::new(FLAT_ROOT).join(format!("hugepages-{}kB", size.kib()));
        self.add_pool(&dir, total, free);
        self
    }

    /// Runs as effective uid `euid` (0 is root).
    pub fn euid(self, euid: u32) -> Self {
        self.inner.borrow_mut().euid = euid;
        self
    }

    /// Creates or replaces a file (and its directories), bypassing every check.
    pub fn set_file(&self, path: impl AsRef<Path>, content: &str) {
        let path = path.as_ref();
        let mut inner = self.inner.borrow_mut();
        if let Some(parent) = path.parent() {
            inner.add_dirs(parent);
        }
        inner.files.insert(path.to_owned(), content.to_owned());
    }

    pub fn create_dir(&self, path: impl AsRef<Path>) {
        self.inner.borrow_mut().add_dirs(path.as_ref());
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        self.inner.borrow().dirs.contains(path)
    }

    /// Appends a raw line to the mount table (`source target fstype options 0 0`).
    pub fn add_mount_line(&self, line: &str) {
        self.inner.borrow_mut().mount_lines.push(line.to_owned());
    }

    /// From now on the kernel puts at most `max_total` pages in the pool of `node` and `size`,
    /// as when memory is short or fragmented.
    pub fn grant_at_most(&self, node: NodeId, size: PageSize, max_total: u64) {
        let dir = self.pool_dir(node, size);
        self.inner.borrow_mut().limits.insert(dir, max_total);
    }

    /// Some process maps `pages` free pages of the pool.
    pub fn use_pages(&self, node: NodeId, size: PageSize, pages: u64) {
        let dir = self.pool_dir(node, size);
        let mut inner = self.inner.borrow_mut();
        let free = inner.count(&dir, "free_hugepages");
        assert!(free >= pages, "only {free} pages free in {}", dir.display());
        inner.set_count(&dir, "free_hugepages", free - pages);
    }

    /// Makes unmounting `path` fail with `EBUSY` while `busy`.
    pub fn set_busy(&self, path: &Path, busy: bool) {
        let mut inner = self.inner.borrow_mut();
        if busy {
            inner.busy.insert(path.to_owned());
        } else {
            inner.busy.remove(path);
        }
    }

    /// How many writes to files under /sys were made.
    pub fn writes_to_sysfs(&self) -> usize {
        self.inner.borrow().sysfs_writes
    }

    /// How many times mounting was attempted.
    pub fn mount_calls(&self) -> usize {
        self.inner.borrow().mount_calls
    }

    fn add_pool(&self, dir: &Path, total: u64, free: u64) {
        assert!(
            free <= total,
            "a pool cannot have more free pages than pages"
        );
        self.set_file(dir.join("nr_hugepages"), &format!("{total}\n"));
        self.set_file(dir.join("free_hugepages"), &format!("{free}\n"));
        self.set_file(dir.join("surplus_hugepages"), "0\n");
    }

    fn pool_dir(&self, node: NodeId, size: PageSize) -> PathBuf {
        let name = format!("hugepages-{}kB", size.kib());
        let numa = Path::new(NODE_ROOT)
            .join(format!("node{}", node.0))
            .join("hugepages")
            .join(&name);
        if self.is_dir(&numa) {
            numa
        } else {
            Path::new(FLAT_ROOT).join(name)
        }
    }
}

impl Inner {
    fn add_dirs(&mut self, path: &Path) {
        for dir in path.ancestors() {
            self.dirs.insert(dir.to_owned());
        }
    }

    fn count(&self, dir: &Path, name: &str) -> u64 {
        self.files
            .get(&dir.join(name))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn set_count(&mut self, dir: &Path, name: &str, value: u64) {
        self.files.insert(dir.join(name), format!("{value}\n"));
    }

    /// What the kernel does on `echo requested > nr_hugepages`.
    fn resize_pool(&mut self, dir: &Path, requested: u64) {
        let total = self.count(dir, "nr_hugepages");
        let free = self.count(dir, "free_hugepages");
        let surplus = self.count(dir, "surplus_hugepages");
        if requested >= total {
            let limit = self.limits.get(dir).copied().unwrap_or(u64::MAX);
            let granted = requested.min(limit).max(total);
            self.set_count(dir, "nr_hugepages", granted);
            self.set_count(dir, "free_hugepages", free + (granted - total));
        } else {
            let freed = (total - requested).min(free);
            let in_use_beyond = total - freed - requested;
            self.set_count(dir, "nr_hugepages", requested);
            self.set_count(dir, "free_hugepages", free - freed);
            self.set_count(dir, "surplus_hugepages", surplus + in_use_beyond);
        }
    }

    fn may_create(&self, path: &Path) -> bool {
        self.euid == 0 || path.starts_with("/tmp")
    }
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Sys for FakeSys {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        let inner = self.inner.borrow();
        match inner.files.get(path) {
            Some(content) => Ok(content.clone()),
            None if inner.dirs.contains(path) => Err(os_error(libc::EISDIR)),
            None => Err(os_error(libc::ENOENT)),
        }
    }

    fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        if path.starts_with("/sys") {
            if !inner.files.contains_key(path) {
                return Err(os_error(libc::ENOENT));
            }
            if inner.euid != 0 {
                return Err(os_error(libc::EACCES));
            }
            inner.sysfs_writes += 1;
            let dir = path.parent().unwrap_or(Path::new("/"));
            let is_pool = inner.files.contains_key(&dir.join("free_hugepages"));
            if path.file_name() == Some("nr_hugepages".as_ref()) && is_pool {
                let requested = contents
                    .trim()
                    .parse()
                    .map_err(|_| os_error(libc::EINVAL))?;
                inner.resize_pool(dir, requested);
                return Ok(());
            }
        } else {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if !inner.dirs.contains(parent) {
                return Err(os_error(libc::ENOENT));
            }
            if !inner.files.contains_key(path) && !inner.may_create(path) {
                return Err(os_error(libc::EACCES));
            }
        }
        inner.files.insert(path.to_owned(), contents.to_owned());
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let inner = self.inner.borrow();
        if !inner.dirs.contains(path) {
            return Err(os_error(libc::ENOENT));
        }
        let names: BTreeSet<String> = inner
            .dirs
            .iter()
            .chain(inner.files.keys())
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.dirs.contains(path) {
            return Ok(());
        }
        if inner.files.contains_key(path) {
            return Err(os_error(libc::EEXIST));
        }
        if !inner.may_create(path) {
            return Err(os_error(libc::EACCES));
        }
        inner.add_dirs(path);
        Ok(())
    }

    fn mount_hugetlbfs(&self, target: &Path, size: PageSize) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.mount_calls += 1;
        if inner.euid != 0 {
            return Err(os_error(libc::EPERM));
        }
        if !inner.dirs.contains(target) {
            return Err(os_error(libc::ENOENT));
        }
        let pool_name = format!("hugepages-{}kB", size.kib());
        let has_pool = inner
            .files
            .keys()
            .any(|p| p.parent().and_then(Path::file_name) == Some(pool_name.as_ref()));
        if !has_pool {
            return Err(os_error(libc::EINVAL));
        }
        let escaped = target.to_string_lossy().replace(' ', "\\040");
        inner.mount_lines.push(format!(
            "nodev {escaped} hugetlbfs rw,relatime,pagesize={size} 0 0"
        ));
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.euid != 0 {
            return Err(os_error(libc::EPERM));
        }
        if inner.busy.contains(target) {
            return Err(os_error(libc::EBUSY));
        }
        let escaped = target.to_string_lossy().replace(' ', "\\040");
        let position = inner
            .mount_lines
            .iter()
            .rposition(|l| l.split_ascii_whitespace().nth(1) == Some(escaped.as_str()))
            .ok_or_else(|| os_error(libc::EINVAL))?;
        inner.mount_lines.remove(position);
        Ok(())
    }

    fn mounts(&self) -> io::Result<String> {
        let mut text = self.inner.borrow().mount_lines.join("\n");
        text.push('\n');
        Ok(text)
    }

    fn euid(&self) -> u32 {
        self.inner.borrow().euid
    }
}
