//! Finds the system DPDK with pkg-config (22.11 LTS required: the `rte_*` structs change between
//! LTS releases), compiles the C shim with DPDK's own cflags and generates the bindings.
//!
//! A missing DPDK fails the build with the command that installs it; there is no stub fallback.
//! Shared linking by default (EAL then dlopens every PMD from DPDK's driver directory); the
//! `static` feature links DPDK and all PMDs into the binary for appliance images.

use std::path::{Path, PathBuf};
use std::process::Command;

const REQUIRED: &str = "22.11";
const INSTALL_HINT: &str = "install DPDK 22.11 with: apt-get install -y libdpdk-dev dpdk-dev \
                            pkg-config (or run 'cargo xtask setup' as root)";

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let statik = std::env::var_os("CARGO_FEATURE_STATIC").is_some();

    let version = pkg_config_output(&["--modversion", "libdpdk"]);
    if !version.starts_with(REQUIRED) {
        panic!(
            "DPDK {version} found, but SciStream-RS is built against DPDK {REQUIRED} LTS (the \
             rte_* structures differ between LTS releases); {INSTALL_HINT}"
        );
    }

    // The pkg-config crate drops `-include rte_config.h -march=...`, which DPDK's headers need,
    // so take the raw cflags.
    let cflags: Vec<String> = pkg_config_output(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(String::from)
        .collect();

    if statik {
        link_static();
    } else {
        pkg_config::Config::new()
            .atleast_version(REQUIRED)
            .probe("libdpdk")
            .unwrap_or_else(|e| panic!("pkg-config cannot link libdpdk: {e}; {INSTALL_HINT}"));
    }

    let mut cc = cc::Build::new();
    cc.file("csrc/shim.c")
        .include("csrc")
        .opt_level(3)
        .warnings(true);
    for f in &cflags {
        cc.flag(f);
    }
    cc.compile("scistream_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-Icsrc")
        .allowlist_function("rte_.*|shim_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // A packed struct with a flexible array member: no Debug possible.
        .no_debug("rte_flow_item_gtp_psc")
        // Packed headers that contain aligned unions, which Rust cannot express; the dataplane
        // never touches L2TP.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .wrap_unsafe_ops(true)
        .derive_default(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            panic!("bindgen over the DPDK headers failed: {e}; {INSTALL_HINT} and clang")
        });
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing the generated bindings");
    println!("cargo:rustc-env=SCISTREAM_DPDK_VERSION={version}");
    // Where a shared DPDK looks for its PMD plugins (Debian: <libdir>/dpdk/pmds-<ABI>); empty
    // when there is none, e.g. a static-only install.
    let pmd_dir = pkg_config_output(&["--variable=libdir", "libdpdk"])
        .split_whitespace()
        .filter_map(|lib| std::fs::read_dir(Path::new(lib).join("dpdk")).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pmds-"))
        })
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=SCISTREAM_DPDK_PMD_DIR={pmd_dir}");
}

fn pkg_config_output(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config ({e}); {INSTALL_HINT}"));
    if !out.status.success() {
        panic!(
            "pkg-config {} failed: {}; DPDK is not installed or not on PKG_CONFIG_PATH; \
             {INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Translates `pkg-config --static --libs libdpdk` into cargo link directives. Inside the
/// `--whole-archive` region are the drivers and buses: without whole-archive their constructors
/// (which register each PMD) are dropped and EAL cannot parse any `--vdev`.
fn link_static() {
    let libs = pkg_config_output(&["--static", "--libs", "libdpdk"]);
    let mut whole = false;
    let mut seen = std::collections::BTreeSet::new();
    for flag in libs.split_whitespace() {
        let (kind, name) = match flag {
            "-Wl,--whole-archive" => {
                whole = true;
                continue;
            }
            "-Wl,--no-whole-archive" => {
                whole = false;
                continue;
            }
            "-pthread" => ("dylib", "pthread"),
            f if f.starts_with("-L") => {
                println!("cargo:rustc-link-search=native={}", &f[2..]);
                continue;
            }
            f if f.starts_with("-l:lib") && f.ends_with(".a") => {
                let kind = if whole {
                    "static:+whole-archive"
                } else {
                    "static"
                };
                (kind, &f[6..f.len() - 2])
            }
            f if f.starts_with("-lrte_") => ("static", &f[2..]),
            f if f.starts_with("-l") => ("dylib", &f[2..]),
            _ => continue,
        };
        if seen.insert(name.to_owned()) {
            println!("cargo:rustc-link-lib={kind}={name}");
        }
    }
    // Debian keeps the static archives next to the shared ones.
    for dir in pkg_config_output(&["--variable=libdir", "libdpdk"]).split_whitespace() {
        println!("cargo:rustc-link-search=native={dir}");
    }
}
