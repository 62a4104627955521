//! Fuzzes the exec policy; the body is `keel_fuzz::exec_policy`.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_fuzz::exec_policy::Policies;

static POLICIES: OnceLock<Policies> = OnceLock::new();

/// The policy catches a panic of the shell parser (brush-parser 0.3 unwraps an
/// overflowing fd number, e.g. `99999999999999999999>x`) and then needs a person for
/// the line, which the properties check. libFuzzer's panic hook aborts on every panic,
/// caught or not: let the parser's through, keep every other one fatal. A parser panic
/// that escaped the policy would still abort (libfuzzer-sys aborts on any panic that
/// reaches it).
fn init() -> Policies {
    static TOLD: AtomicBool = AtomicBool::new(false);
    let fatal = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_parser = info
            .location()
            .is_some_and(|l| l.file().contains("brush-parser"));
        if !in_parser {
            fatal(info);
        } else if !TOLD.swap(true, Ordering::Relaxed) {
            eprintln!("(the shell parser panicked, as it does on some inputs: {info})");
        }
    }));
    Policies::new().unwrap_or_else(|e| panic!("the policies compile: {e}"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| POLICIES.get_or_init(init).run(data, false));
