//! The `keel` command line.

fn main() -> std::process::ExitCode {
    eprintln!("keel: the command line is not built yet");
    std::process::ExitCode::from(2)
}
