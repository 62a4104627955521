//! Finding a command's processes from the test, by a tag in their command line:
//! pids a command prints are its PID namespace's, not the test's, so tests look
//! for processes by what they run (`sleep 3170.25`), which nothing can hide from
//! the test's `/proc`.

use keel_tools::{ExecSecurity, IsolationMode, SandboxConfig};

/// Live processes whose command line contains `tag`.
pub fn alive(tag: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(tag) && !super::common::process_gone(pid) {
            found.push(pid);
        }
    }
    found
}

/// Kills whatever still runs `tag` (cleanup after a test that shows a survivor).
pub fn kill_tagged(tag: &str) {
    for pid in alive(tag) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

/// A tag no other test uses: `sleep` accepts it as a duration.
pub fn tag(n: u32) -> String {
    format!("31{n:02}.{}", std::process::id() % 1000 + 1000)
}

/// Sets up a configuration.
pub type Configure = fn(&mut SandboxConfig);

/// The ways commands can run here: `(name, configure)`. Namespaced (where the
/// system allows) and supervised, each with isolation off and best-effort.
pub fn shapes() -> Vec<(&'static str, Configure)> {
    vec![
        ("namespaced, isolation off", |c| {
            c.exec.security = ExecSecurity::AllowAlways;
        }),
        ("namespaced, best-effort", |c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.mode = IsolationMode::BestEffort;
        }),
        ("supervised, isolation off", |c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.namespaces = false;
        }),
        ("supervised, best-effort", |c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.isolation.mode = IsolationMode::BestEffort;
            c.isolation.namespaces = false;
        }),
    ]
}
