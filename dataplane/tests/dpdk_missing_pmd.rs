//! A PMD that is not installed: EAL alone says "No such device"; ours names the driver, the
//! plugin file it looked for and the package. The test hides `librte_net_null*` from DPDK's
//! plugin directory in a private mount namespace (a copy of the directory without it, bound over
//! the real one; the host's directory is untouched) and starts EAL there with a net_null vdev,
//! in a child process (this test binary, re-executed). Needs root (mount namespace).

use std::path::Path;
use std::process::Command;

use dataplane::dpdk::{DpdkError, Eal, PMD_DIR};

const CHILD: &str = "S2_MISSING_PMD_CHILD";
const NAME: &str = "eal_names_a_pmd_that_is_not_installed";

#[test]
fn eal_names_a_pmd_that_is_not_installed() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it bind-mounts over DPDK's plugin directory in a private mount \
         namespace); run it as root, as CI does"
    );
    assert!(
        !PMD_DIR.is_empty() && Path::new(PMD_DIR).is_dir(),
        "this build found no DPDK plugin directory ({PMD_DIR:?}); install DPDK (cargo xtask setup)"
    );
    let copy = std::env::temp_dir().join(format!("s2-pmds-{}", std::process::id()));
    std::fs::create_dir_all(&copy).expect("temp dir");
    for e in std::fs::read_dir(PMD_DIR).expect("plugin dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if !is_null_plugin(&name) {
            // Symlinks stay symlinks (they point at names in the same directory).
            let target = copy.join(&name);
            match std::fs::read_link(e.path()) {
                Ok(link) => std::os::unix::fs::symlink(link, target).expect("symlink"),
                Err(_) => {
                    std::fs::copy(e.path(), target).expect("copy");
                }
            }
        }
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && exec "$3" --exact "$4" --nocapture"#)
        .args(["sh"])
        .arg(&copy)
        .arg(PMD_DIR)
        .arg(&exe)
        .arg(NAME)
        .env(CHILD, "1")
        .output()
        .expect("running unshare (util-linux)");
    let _ = std::fs::remove_dir_all(&copy);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the EAL child failed:\n{log}");
    assert!(log.contains("CHILD-OK"), "the child did not report:\n{log}");
    assert!(
        has_null_plugin(),
        "the host's plugin directory must be untouched"
    );
}

fn child() {
    assert!(
        !has_null_plugin(),
        "the child should not see net_null's plugin"
    );
    let args: Vec<String> = [
        "missing-pmd-test",
        "-l",
        "0",
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--vdev=net_null0",
    ]
    .map(String::from)
    .into();
    let err = Eal::init(&args).expect_err("EAL cannot create a device without its driver");
    let text = err.to_string();
    println!("{text}");
    assert!(
        matches!(&err, DpdkError::PmdMissing { missing, .. }
            if missing == &[("net_null".to_owned(), "librte_net_null.so".to_owned())]),
        "{err:?}"
    );
    assert!(
        text.contains("no driver for net_null")
            && text.contains(PMD_DIR)
            && text.contains("apt install dpdk"),
        "{text}"
    );
    println!("CHILD-OK");
}

fn is_null_plugin(file: &std::ffi::OsStr) -> bool {
    file.to_string_lossy().starts_with("librte_net_null.")
}

/// Whether DPDK's plugin directory, as this process sees it, holds net_null's library.
fn has_null_plugin() -> bool {
    std::fs::read_dir(PMD_DIR)
        .expect("plugin dir")
        .any(|e| e.is_ok_and(|e| is_null_plugin(&e.file_name())))
}
