//! One `exec` call of a trivial command against a bare `sh -c` spawn, in one run.
//!
//! Run: `cargo bench -p keel-tools --bench exec`. Each round runs every case once,
//! in turn, so a machine shared with other work slows all of them alike; the
//! report gives each case's median and fastest time over `ROUNDS` rounds, the
//! ratio of its median to the bare spawn's, and the median of the per-round
//! ratios (each case against the bare spawn of the same round).
//!
//! - `bare sh -c true`: `std::process::Command` spawning `/bin/sh -c true` and
//!   collecting its output (what any program pays to run a command);
//! - `exec true` / `exec echo x >> f`: the exec tool through its object-safe
//!   interface, as the engine calls it, with the default configuration (isolation
//!   off; a PID namespace of its own where the system allows), the kill-everything
//!   guarantee intact;
//! - `exec true, supervised`: without namespaces (`isolation.namespaces = false`):
//!   a subreaper supervisor, then the shell;
//! - `exec true, best-effort`: isolation on (Landlock, a network namespace).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use keel_tools::{
    CallContext, ExecSecurity, IsolationMode, SandboxConfig, SandboxTools, ToolRegistry,
};
use serde_json::json;

const ROUNDS: usize = 300;
const WARMUP: usize = 20;

fn tools(dir: &std::path::Path, f: impl FnOnce(&mut SandboxConfig)) -> ToolRegistry {
    let mut config = SandboxConfig::default();
    config.local.cwd = dir.to_path_buf();
    config.exec.security = ExecSecurity::AllowAlways;
    f(&mut config);
    let env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    SandboxTools::with_host_env(config, env).unwrap().registry()
}

async fn call(reg: &ToolRegistry, command: &str) {
    let out = reg
        .get("exec")
        .unwrap()
        .call_json(json!({ "command": command }), CallContext::detached())
        .await;
    assert!(!out.is_error, "{}", out.content);
}

fn bare() {
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = tools(dir.path(), |_| {});
    let supervised = tools(dir.path(), |c| c.isolation.namespaces = false);
    let isolated = tools(dir.path(), |c| c.isolation.mode = IsolationMode::BestEffort);
    let support = keel_tools::sandbox::isolation_support();
    println!("system: {support:?}");
    let names = [
        "bare sh -c true",
        "exec true",
        "exec echo x >> f",
        "exec true, supervised",
        "exec true, best-effort",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    rt.block_on(async {
        for round in 0..WARMUP + ROUNDS {
            for (i, time) in times.iter_mut().enumerate() {
                let start = Instant::now();
                match i {
                    0 => bare(),
                    1 => call(&plain, "true").await,
                    2 => call(&plain, "echo x >> f").await,
                    3 => call(&supervised, "true").await,
                    _ => call(&isolated, "true").await,
                }
                if round >= WARMUP {
                    time.push(start.elapsed());
                }
            }
        }
    });
    let base = median(&mut times[0].clone());
    println!(
        "{:<26} {:>10} {:>10} {:>14} {:>16}",
        "case", "median", "fastest", "median/bare", "per-round ratio"
    );
    let bare_times = times[0].clone();
    for (name, t) in names.iter().zip(times.iter_mut()) {
        // The ratio within each round (same machine load), then its median.
        let mut ratios: Vec<f64> = t
            .iter()
            .zip(&bare_times)
            .map(|(c, b)| c.as_secs_f64() / b.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let m = median(t);
        println!(
            "{name:<26} {:>7.3} ms {:>7.3} ms {:>13.2}x {:>15.2}x",
            m.as_secs_f64() * 1e3,
            t[0].as_secs_f64() * 1e3,
            m.as_secs_f64() / base.as_secs_f64(),
            ratios[ratios.len() / 2]
        );
    }
}
