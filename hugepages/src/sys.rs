//! The syscall seam: every file, directory, mount and credential operation this crate makes goes
//! through [`Sys`], so the logic above it runs unchanged against the host ([`HostSys`]) and against
//! an in-memory kernel in tests (`testing::FakeSys`, behind the `testing` feature).
//!
//! The trait is deliberately small and speaks plain `io::Result`: turning an `EACCES` into "run as
//! root" or an `ENOENT` into "this kernel has no such pool" is the caller's job, because only the
//! caller knows what it was trying to do.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::PageSize;

/// Where the mount table of this process's mount namespace is read from.
pub const MOUNTS_PATH: &str = "/proc/self/mounts";

/// The operating-system operations hugepage management needs.
///
/// Methods take `&self`: the host implementation has no state, and fakes keep theirs behind
/// interior mutability so one fake can be shared by the code under test and the test's asserts.
pub trait Sys {
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Writes `contents` to `path`, creating or truncating a regular file; for sysfs attributes
    /// this is the `echo N > file` the kernel acts on.
    fn write(&self, path: &Path, contents: &str) -> io::Result<()>;
    /// The names (not paths) of the entries in directory `path`, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `mount -t hugetlbfs -o pagesize=<size> nodev <target>`.
    fn mount_hugetlbfs(&self, target: &Path, size: PageSize) -> io::Result<()>;
    /// `umount <target>` (no lazy or forced detach: a busy mount fails with `EBUSY`).
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// The text of [`MOUNTS_PATH`].
    fn mounts(&self) -> io::Result<String>;
    fn euid(&self) -> u32;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSys;

impl Sys for HostSys {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
        std::fs::write(path, contents)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            // sysfs and procfs names are ASCII; a non-UTF-8 name cannot be one we look for.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn mount_hugetlbfs(&self, target: &Path, size: PageSize) -> io::Result<()> {
        let target = c_path(target)?;
        let options = CString::new(format!("pagesize={size}"))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: every pointer is a NUL-terminated string that outlives the call; hugetlbfs takes
        // its `data` argument as a NUL-terminated option string, which `options` is.
        let rc = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                target.as_ptr(),
                c"hugetlbfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        check(rc)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let target = c_path(target)?;
        // SAFETY: `target` is a NUL-terminated string that outlives the call; flags 0 is a plain
        // unmount.
        let rc = unsafe { libc::umount2(target.as_ptr(), 0) };
        check(rc)
    }

    fn mounts(&self) -> io::Result<String> {
        std::fs::read_to_string(MOUNTS_PATH)
    }

    fn euid(&self) -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
