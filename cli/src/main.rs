//! The `keel` binary: see the `keel_cli` library.

fn main() -> std::process::ExitCode {
    keel_cli::main()
}
