//! Compiles the BPF program with clang (`-target bpf`) and generates the Rust side of the types it
//! shares with user space from the same header (bindgen), so they are defined once. A missing
//! clang fails the build with the command that installs it.

use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install clang and the BPF headers with: apt-get install -y clang \
                            libbpf-dev (or run 'cargo xtask setup')";

fn main() {
    let src = "bpf/sockmap.bpf.c";
    let header = "bpf/shared.h";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // asm/types.h lives under the multiarch include directory on Debian.
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "x86_64-linux-gnu".into());
    let include = format!("-I/usr/include/{multiarch}");

    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let object = out_dir.join("sockmap.bpf.o");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-Ibpf"])
        .arg(&include)
        .args(["-c", src, "-o"])
        .arg(&object)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "clang failed to compile {src} ({s}); see the errors above. If bpf/bpf_helpers.h is \
             missing, {INSTALL_HINT}"
        ),
        Err(e) => panic!(
            "cannot run '{clang}' ({e}): the sockmap engine's BPF program needs clang; {INSTALL_HINT}"
        ),
    }

    let bindings = bindgen::Builder::default()
        .header(header)
        .clang_arg(&include)
        .allowlist_type("sock_stats")
        .allowlist_var("SOCKMAP_.*")
        .derive_default(true)
        .derive_eq(true)
        .layout_tests(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over {header} failed: {e}; {INSTALL_HINT}"));
    bindings
        .write_to_file(out_dir.join("shared.rs"))
        .expect("writing the generated bindings");
}
