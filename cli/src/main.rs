//! The `keel` binary: see the `keel_cli` library.

fn main() -> std::process::ExitCode {
    // First, while this is the only thread: take the provider keys out of the
    // environment block into memory, and make this process not dumpable, so no
    // command an agent runs can read them (see `keel_tools::harden_process`).
    let hardening = keel_tools::harden_process(&[]);
    for note in &hardening.notes {
        eprintln!("keel: warning: {note}");
    }
    keel_cli::main()
}
