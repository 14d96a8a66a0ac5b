//! The `s2uc` binary; see `control::cli::s2uc`.

fn main() -> anyhow::Result<()> {
    control::cli::s2uc::main()
}
