//! The `appctrl` binary; see `control::cli::appctrl`.

fn main() -> anyhow::Result<()> {
    control::cli::appctrl::main()
}
