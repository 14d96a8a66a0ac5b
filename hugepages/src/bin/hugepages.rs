//! `hugepages`: reserve, mount, inspect and release hugepages for DPDK. The work is in
//! `hugepages::cli`; this only connects it to the host, stdout and the exit status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use hugepages::HostSys;
use hugepages::cli::{Cli, exit_code, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result = run(&HostSys, &cli, &mut stdout);
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hugepages: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}
