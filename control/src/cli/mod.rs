//! Command lines of `s2cs`, `s2uc` and `appctrl`. Option names follow upstream SciStream
//! (underscore spellings such as `--listener_ip`), and every one also answers to its dashed
//! spelling (`--listener-ip`).

pub mod appctrl;
pub mod s2cs;
pub mod s2uc;

/// Logging for the binaries: `RUST_LOG` wins; otherwise info, or debug with `-v`.
pub fn init_logging(verbose: bool) {
    let default = if verbose {
        "debug,h2=info,hyper=info,tower=info,rustls=info"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a client command (`s2uc`, `appctrl`) on a single-threaded runtime.
fn run_client(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    init_logging(false);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(command)
}
