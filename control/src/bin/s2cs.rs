//! The `s2cs` binary; see `control::cli::s2cs`.

fn main() -> anyhow::Result<()> {
    control::cli::s2cs::main()
}
