//! `cargo xtask <command>`: the project's entry points on a fresh machine (run as root).
//!
//! - `setup`: installs the system packages and Python modules the demo, tests and benchmarks
//!   use (only what is missing).
//! - `demo [ARGS]`: set-up, release build, then the two-gateway demo (`s2testbed demo ARGS`).
//! - `test`: set-up, release build, formatting and lint checks, the whole test suite, then lints
//!   and tests of s2cs built without DPDK (`--no-default-features`).
//! - `bench [ARGS]`: set-up, release build, then the testbed benchmark (`bench/run.sh ARGS`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages and the command that shows each is installed.
const APT: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("iputils-ping", "ping"),
    ("procps", "sysctl"),
    ("iperf3", "iperf3"),
    ("socat", "socat"),
    ("haproxy", "haproxy"),
    ("nginx", "nginx"),
    (
        "libnginx-mod-stream",
        "/usr/lib/nginx/modules/ngx_stream_module.so",
    ),
    ("python3-pip", "pip3"),
    // The sockmap engine's BPF program (clang -target bpf, libbpf's bpf_helpers.h) and the
    // bindgen-generated shared types (libclang, which clang pulls in).
    ("clang", "clang"),
    ("libbpf-dev", "/usr/include/bpf/bpf_helpers.h"),
    // The DPDK engine: DPDK 22.11 found with pkg-config (dpdk-sys), dpdk-testpmd for the
    // forwarding benchmark's baseline, and ethtool to turn veth offloads off in its tests.
    ("pkg-config", "pkg-config"),
    (
        "libdpdk-dev",
        "/usr/lib/x86_64-linux-gnu/pkgconfig/libdpdk.pc",
    ),
    ("dpdk-dev", "dpdk-testpmd"),
    ("ethtool", "ethtool"),
    // s2bench's ZeroMQ workload (zpub / zsub): the zmq crate links the system libzmq.
    (
        "libzmq3-dev",
        "/usr/lib/x86_64-linux-gnu/pkgconfig/libzmq.pc",
    ),
    // s2bench report lays out plot text with DejaVu Sans, loaded at run time.
    (
        "fonts-dejavu-core",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ),
];

/// Python modules (import name, pip package) for the cross-implementation gRPC test and the
/// pyzmq interop test of s2bench's ZeroMQ workload.
const PIP: &[(&str, &str)] = &[
    ("grpc", "grpcio"),
    ("grpc_tools", "grpcio-tools"),
    ("zmq", "pyzmq"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "setup" => setup(),
        "demo" => setup().and_then(|()| build()).and_then(|()| demo(rest)),
        "test" => setup().and_then(|()| build()).and_then(|()| test(rest)),
        "bench" => setup().and_then(|()| build()).and_then(|()| bench(rest)),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|demo|test|bench> [ARGS]\n\
                 \n  setup   install system packages and Python modules (as root)\
                 \n  demo    run the two-gateway demo (extra ARGS go to 's2testbed demo')\
                 \n  test    run formatting and lint checks and the whole test suite\
                 \n  bench   run the testbed benchmark (extra ARGS go to bench/run.sh)"
            );
            return if cmd == "help" || cmd == "--help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn have(probe: &str) -> bool {
    if probe.starts_with('/') {
        return Path::new(probe).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {probe} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn setup() -> Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(_, p)| !have(p))
        .map(|(pkg, _)| *pkg)
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            return Err(format!(
                "missing packages {missing:?}; run as root (the testbed needs root anyway)"
            ));
        }
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let py_missing: Vec<&str> = PIP
        .iter()
        .filter(|(module, _)| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if !py_missing.is_empty() {
        run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&py_missing))?;
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn build() -> Result<()> {
    run(cargo().args(["build", "--release", "--workspace", "--bins"]))
}

fn demo(args: &[String]) -> Result<()> {
    run(Command::new(root().join("target/release/s2testbed"))
        .arg("demo")
        .args(args))
}

fn test(args: &[String]) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["test", "--release", "--workspace"])
        .args(args))?;
    // s2cs without DPDK (gateways that do not install it), in its own target directory so the
    // feature change does not rebuild the workspace's.
    let no_dpdk = ["-p", "control", "--no-default-features", "--target-dir"];
    let dir = root().join("target/no-dpdk");
    run(cargo().arg("clippy").args(no_dpdk).arg(&dir).args([
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .arg("test")
        .args(no_dpdk)
        .arg(&dir)
        .args(["--test", "no_dpdk"]))
}

fn bench(args: &[String]) -> Result<()> {
    run(Command::new("bash")
        .arg(root().join("bench/run.sh"))
        .args(args))
}
