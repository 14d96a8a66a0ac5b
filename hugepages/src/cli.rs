//! The `hugepages` command: argument parsing (clap) and the three subcommands, run against any
//! [`Sys`] so they are tested on the fake kernel. The binary only parses, calls [`run`] with the
//! host and maps the error to an exit code with [`exit_code`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::size::{format_bytes, parse_bytes};
use crate::state::DEFAULT_STATE_PATH;
use crate::{
    Error, NodeId, PageSize, State, Sys, ensure_free, ensure_mounted, mounts, pages_needed,
    release, status, unmount,
};

const EXIT_CODES: &str = "\
Exit status: 0 on success; 77 when root is needed; 75 when the kernel had too little memory \
(free some and retry); 2 for usage errors, including a malformed size, count or node; 1 for \
anything else. Errors go to stderr and say what to do.";

/// Reserve, mount, inspect and release the hugepages DPDK needs.
#[derive(Debug, Parser)]
#[command(
    name = "hugepages",
    version,
    long_about = "Reserve, mount, inspect and release the hugepages DPDK needs.\n\n\
        DPDK's EAL maps its memory from hugepages: a pool of free pages of one size on each NUMA \
        node its lcores and NICs sit on, and a hugetlbfs mount of that page size. `reserve` \
        provides both and records what it changed; `release` undoes exactly that; `status` shows \
        what the host has.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the hugepage pools per NUMA node and page size, and the hugetlbfs mounts.
    ///
    /// Needs no privileges.
    Status(StatusArgs),
    /// Make pages free on a node, reserving only what is missing, and mount a hugetlbfs.
    ///
    /// Pages already free count: `--pages 512` with 500 free reserves 12. The reservation is all
    /// or nothing: if the kernel cannot find the memory, the pool is left as it was. Unless
    /// `--no-mount` is given, a hugetlbfs of the page size is mounted at `--mount` when none is
    /// mounted anywhere. What was added and mounted is recorded in the state file for `release`.
    /// Needs root.
    Reserve(ReserveArgs),
    /// Give back exactly the pages earlier `reserve` runs added, and unmount what they mounted.
    ///
    /// Pages others reserved are left alone. Mounts are unmounted first, since stale files in
    /// them hold pages; a mount still in use stops the release, so stop DPDK and run it again.
    /// Releasing twice is harmless: the second run finds nothing recorded. Needs root.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (pools with node, size, total, free, surplus, dir; mounts with path and
    /// page_size) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("amount").required(true).args(["pages", "bytes"])))]
pub struct ReserveArgs {
    /// Page size: 2M or 1G on x86-64 (also written 2MiB, 2048kB, 1GiB).
    #[arg(long, default_value = "2M", value_name = "SIZE")]
    pub size: PageSize,
    /// Pages to have free on the node.
    #[arg(long, value_name = "N")]
    pub pages: Option<u64>,
    /// Bytes to have free on the node, rounded up to whole pages (e.g. 512M, 1G, 4GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub bytes: Option<u64>,
    /// NUMA node, e.g. 0 or node1: the node of the NIC and the data-path cores. A host without
    /// NUMA has node 0 only.
    #[arg(long, default_value = "0", value_name = "NODE")]
    pub node: NodeId,
    /// Where to mount a hugetlbfs if none of this page size is mounted [default: /dev/hugepages
    /// for 2M, /dev/hugepages1G for 1G].
    #[arg(long, value_name = "DIR")]
    pub mount: Option<PathBuf>,
    /// Do not mount a hugetlbfs (for EAL's --in-memory mode, which needs none).
    #[arg(long, conflicts_with = "mount")]
    pub no_mount: bool,
    /// The file recording what was reserved and mounted, for `release`.
    #[arg(long, env = "HUGEPAGES_STATE", default_value = DEFAULT_STATE_PATH, value_name = "FILE")]
    pub state: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The file `reserve` recorded to.
    #[arg(long, env = "HUGEPAGES_STATE", default_value = DEFAULT_STATE_PATH, value_name = "FILE")]
    pub state: PathBuf,
}

/// Runs one command against `sys`, writing what it did to `out`.
pub fn run(sys: &dyn Sys, cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    match &cli.command {
        Command::Status(args) => run_status(sys, args, out),
        Command::Reserve(args) => run_reserve(sys, args, out),
        Command::Release(args) => run_release(sys, args, out),
    }
}

/// The process exit status for `error` (listed in `--help`).
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::NotRoot { .. } => 77,
        Error::NotEnoughMemory { .. } | Error::TooFewFree { .. } => 75,
        _ => 1,
    }
}

fn run_status(sys: &dyn Sys, args: &StatusArgs, out: &mut dyn Write) -> Result<(), Error> {
    let status = status(sys)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &status).map_err(|e| output_error(e.into()))?;
        writeln!(out).map_err(output_error)
    } else {
        writeln!(out, "{status}").map_err(output_error)
    }
}

fn run_reserve(sys: &dyn Sys, args: &ReserveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (node, size) = (args.node, args.size);
    let pages = match (args.pages, args.bytes) {
        (Some(pages), _) => pages,
        (None, Some(bytes)) => pages_needed(bytes, size),
        // The "amount" group requires one of the two.
        (None, None) => 0,
    };
    // Read the state first, so a broken state file stops us before anything changes.
    let mut state = State::load(sys, &args.state)?;

    let reservation = ensure_free(sys, node, size, pages)?;
    if reservation.added > 0 {
        state.record(reservation);
        if let Err(e) = state.save(sys, &args.state) {
            // Unrecorded pages could never be released by `release`; do not keep them.
            let _ = release(sys, &reservation);
            return Err(e);
        }
    }
    writeln!(
        out,
        "{node} {size}: {pages} pages ({}) free; reserved {} now, {} were free already",
        format_bytes(pages * size.bytes()),
        reservation.added,
        pages - reservation.added,
    )
    .map_err(output_error)?;

    if !args.no_mount {
        let path = match &args.mount {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
            None => size.default_mount_path(),
        };
        let mounted = ensure_mounted(sys, size, &path)?;
        if mounted.ours {
            state.record_mount(mounted.mount.clone());
            if let Err(e) = state.save(sys, &args.state) {
                let _ = unmount(sys, &mounted.mount);
                return Err(e);
            }
            writeln!(out, "mounted hugetlbfs at {}", mounted.mount).map_err(output_error)?;
        } else {
            writeln!(out, "using the hugetlbfs already at {}", mounted.mount)
                .map_err(output_error)?;
        }
    }
    if !state.is_empty() {
        writeln!(
            out,
            "recorded in {}; `hugepages release{}` gives it back",
            args.state.display(),
            state_flag(&args.state)
        )
        .map_err(output_error)?;
    }
    Ok(())
}

fn run_release(sys: &dyn Sys, args: &ReleaseArgs, out: &mut dyn Write) -> Result<(), Error> {
    let path = args.state.as_path();
    let mut state = State::load(sys, path)?;
    if state.is_empty() {
        return writeln!(
            out,
            "nothing to release: {} records no reservations or mounts (already released, or \
             nothing was reserved with this --state)",
            path.display()
        )
        .map_err(output_error);
    }
    // Unmount first: files left in our mounts by a crashed DPDK process hold pages, and
    // unmounting frees them so that lowering the pools below can return them at once. After
    // each step the state file is rewritten, so a failure leaves it saying what is left.
    while let Some(mount) = state.mounts.first().cloned() {
        if mounts(sys)?.contains(&mount) {
            unmount(sys, &mount)?;
            writeln!(out, "unmounted {mount}").map_err(output_error)?;
        } else {
            writeln!(out, "{mount} was already unmounted").map_err(output_error)?;
        }
        state.mounts.remove(0);
        state.save(sys, path)?;
    }
    while let Some(reservation) = state.reservations.first().copied() {
        let released = release(sys, &reservation)?;
        writeln!(out, "{released}").map_err(output_error)?;
        state.reservations.remove(0);
        state.save(sys, path)?;
    }
    writeln!(out, "released everything recorded in {}", path.display()).map_err(output_error)
}

/// ` --state FILE` when `path` is not the default, to repeat in advice.
fn state_flag(path: &Path) -> String {
    if path == Path::new(DEFAULT_STATE_PATH) {
        String::new()
    } else {
        format!(" --state {}", path.display())
    }
}

fn output_error(source: io::Error) -> Error {
    Error::Io {
        op: "writing to",
        path: PathBuf::from("standard output"),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeSys;

    const STATE: &str = "/tmp/hp/state.json";

    fn run_args(sys: &FakeSys, args: &[&str]) -> Result<String, Error> {
        let cli = Cli::try_parse_from(std::iter::once("hugepages").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut out = Vec::new();
        run(sys, &cli, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn nr(sys: &FakeSys) -> u64 {
        let path = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
        sys.read_to_string(Path::new(path))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn help_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn reserve_then_release_in_separate_runs_returns_exactly_what_was_added() {
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 20, 4);
        let said = run_args(&sys, &["reserve", "--pages", "10", "--state", STATE]).unwrap();
        assert!(
            said.contains("node0 2M: 10 pages (20 MiB) free; reserved 6 now, 4 were free already"),
            "{said}"
        );
        assert!(
            said.contains("mounted hugetlbfs at /dev/hugepages (2M)"),
            "{said}"
        );
        assert!(
            said.contains(&format!("`hugepages release --state {STATE}`")),
            "{said}"
        );
        assert_eq!(nr(&sys), 26);

        // Another run for the same amount finds the pages free and changes nothing.
        let said = run_args(&sys, &["reserve", "--bytes", "20M", "--state", STATE]).unwrap();
        assert!(said.contains("reserved 0 now"), "{said}");
        assert!(
            said.contains("using the hugetlbfs already at /dev/hugepages"),
            "{said}"
        );
        assert_eq!(nr(&sys), 26);

        let said = run_args(&sys, &["release", "--state", STATE]).unwrap();
        assert!(said.contains("unmounted /dev/hugepages (2M)"), "{said}");
        assert!(said.contains("node0 2M: gave back 6 pages"), "{said}");
        assert_eq!(nr(&sys), 20);
        assert!(mounts(&sys).unwrap().is_empty());

        let said = run_args(&sys, &["release", "--state", STATE]).unwrap();
        assert!(said.starts_with("nothing to release"), "{said}");
        assert_eq!(nr(&sys), 20);
    }

    #[test]
    fn release_never_unmounts_a_reused_mount() {
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 0, 0);
        sys.add_mount_line("hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0");
        run_args(&sys, &["reserve", "--pages", "2", "--state", STATE]).unwrap();
        run_args(&sys, &["release", "--state", STATE]).unwrap();
        assert_eq!(mounts(&sys).unwrap().len(), 1);
        assert_eq!(sys.mount_calls(), 0);
    }

    #[test]
    fn busy_mount_stops_release_and_keeps_the_record() {
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 0, 0);
        run_args(&sys, &["reserve", "--pages", "2", "--state", STATE]).unwrap();
        sys.set_busy(Path::new("/dev/hugepages"), true);
        let err = run_args(&sys, &["release", "--state", STATE]).unwrap_err();
        assert!(matches!(err, Error::Unmount { .. }), "{err}");
        assert_eq!(nr(&sys), 2, "pages stay until the mount is free");
        sys.set_busy(Path::new("/dev/hugepages"), false);
        let said = run_args(&sys, &["release", "--state", STATE]).unwrap();
        assert!(said.contains("gave back 2 pages"), "{said}");
        assert_eq!(nr(&sys), 0);
    }

    #[test]
    fn failed_reserve_records_nothing() {
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 0, 0);
        sys.grant_at_most(NodeId(0), PageSize::TWO_MIB, 5);
        let err = run_args(&sys, &["reserve", "--pages", "10", "--state", STATE]).unwrap_err();
        assert_eq!(exit_code(&err), 75);
        assert_eq!(nr(&sys), 0);
        let said = run_args(&sys, &["release", "--state", STATE]).unwrap();
        assert!(said.starts_with("nothing to release"), "{said}");
    }

    #[test]
    fn unrecordable_reservation_is_given_back() {
        // The state file's directory cannot be created: a file is in the way.
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 0, 0);
        sys.set_file("/tmp/file", "");
        let err = run_args(
            &sys,
            &["reserve", "--pages", "3", "--state", "/tmp/file/state.json"],
        )
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(nr(&sys), 0);
    }

    #[test]
    fn not_root_exits_77_with_advice() {
        let sys = FakeSys::new()
            .pool(NodeId(0), PageSize::TWO_MIB, 0, 0)
            .euid(1000);
        let err = run_args(&sys, &["reserve", "--pages", "1", "--state", STATE]).unwrap_err();
        assert_eq!(exit_code(&err), 77);
        assert!(err.to_string().contains("run it as root"), "{err}");
    }

    #[test]
    fn status_prints_a_table_or_json() {
        let sys = FakeSys::new().pool(NodeId(0), PageSize::TWO_MIB, 4, 4);
        let table = run_args(&sys, &["status"]).unwrap();
        assert!(table.starts_with("node "), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&run_args(&sys, &["status", "--json"]).unwrap()).unwrap();
        assert_eq!(json["pools"][0]["total"], 4);
    }

    #[test]
    fn arguments_are_validated_by_the_parser() {
        for bad in [
            &["reserve"][..],
            &["reserve", "--pages", "1", "--bytes", "1G"],
            &["reserve", "--pages", "1", "--size", "3M"],
            &["reserve", "--bytes", "lots"],
            &["reserve", "--pages", "1", "--mount", "/x", "--no-mount"],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("hugepages").chain(bad.iter().copied()))
                    .is_err(),
                "{bad:?}"
            );
        }
        let cli = Cli::try_parse_from([
            "hugepages",
            "reserve",
            "--size",
            "1GiB",
            "--bytes",
            "3G",
            "--node",
            "node1",
        ])
        .unwrap();
        let Command::Reserve(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(
            (args.size, args.bytes, args.node),
            (PageSize::ONE_GIB, Some(3 << 30), NodeId(1))
        );
    }
}
