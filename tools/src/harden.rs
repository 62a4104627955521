//! Hardening the process that holds provider keys: [`harden_process`].
//!
//! A key in Keel's environment is readable by every process of the same user
//! through `/proc/<pid>/environ`, which shows the environment block the kernel laid
//! out at `exec` — `unsetenv` only unlinks a variable from `environ`, the bytes stay.
//! So at start-up, before any thread exists, [`harden_process`]:
//! 1. captures every provider key (`*_API_KEY`, `ANTHROPIC_AUTH_TOKEN`, and names
//!    given by the caller) into the in-memory [`secrets`](crate::secrets) set, where
//!    providers read them ([`secrets::var`](crate::secrets::var)) and the masker
//!    finds them;
//! 2. removes them from the environment and overwrites their bytes in the original
//!    block in place (its bounds are `env_start`/`env_end` of `/proc/self/stat`),
//!    then reads `/proc/self/environ` back to check;
//! 3. marks the process not dumpable (`PR_SET_DUMPABLE` 0): processes of the same
//!    user can no longer read its `/proc/<pid>/{environ,mem}` or attach to it
//!    (root can, with `CAP_SYS_PTRACE`: the exec tool drops that capability, and
//!    gives commands a `/proc` of their own where it can).
//!
//! Overwriting in place was chosen over re-executing with a clean environment (and
//! the keys over a pipe): it costs nothing, needs no cooperation from the program's
//! `main` beyond this call, and works for embedders whose binary cannot re-exec
//! itself into a special mode. Its one condition — no other thread may be reading
//! the environment meanwhile — is checked: with other threads running, the keys are
//! still captured and the process made not dumpable, but the block is left alone
//! and the report says so. A side effect of not being dumpable: no core dumps.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::secrets;

/// What [`harden_process`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hardening {
    /// The variables captured and taken out of the environment (names only).
    pub captured: Vec<String>,
    /// Whether their bytes were overwritten in the original environment block (and
    /// `/proc/self/environ` no longer shows them).
    pub environ_scrubbed: bool,
    /// Whether the process is now not dumpable.
    pub not_dumpable: bool,
    /// What could not be done, in words a person can act on.
    pub notes: Vec<String>,
}

/// Hardens this process for holding provider keys (see the module docs). Call it
/// first thing in `main`, before any thread starts (an async runtime included).
///
/// ```no_run
/// // First thing in `main`:
/// let report = keel_tools::harden_process(&[]);
/// for note in &report.notes {
///     eprintln!("warning: {note}");
/// }
/// // ... then build providers with keel_tools::secrets::var("ANTHROPIC_API_KEY").
/// ```
pub fn harden_process(extra_keys: &[&str]) -> Hardening {
    let mut report = Hardening::default();
    let captured: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| secrets::is_provider_key(k) || extra_keys.contains(&k))
        })
        .collect();
    for (name, value) in &captured {
        let name = name.to_string_lossy();
        if let Some(v) = value.to_str() {
            secrets::global().add(&name, v);
        }
        report.captured.push(name.into_owned());
    }
    let threads = thread_count();
    if captured.is_empty() {
        report.environ_scrubbed = true;
    } else if threads == Some(1) {
        // SAFETY: `remove_var` is unsafe because another thread could be reading the
        // environment at the same time; this process has exactly one thread (checked
        // just above through /proc/self/status), so none can.
        #[allow(unsafe_code)]
        unsafe {
            for (name, _) in &captured {
                std::env::remove_var(name);
            }
        }
        match scrub_block(&captured) {
            Ok(()) => report.environ_scrubbed = true,
            Err(why) => report.notes.push(format!(
                "the provider keys could not be erased from this process's original environment block ({why}): same-user processes that can read /proc/{}/environ could still see them",
                std::process::id()
            )),
        }
    } else {
        report.notes.push(format!(
            "harden_process ran with {} threads already started, so the provider keys stay in this process's environment block; call it first thing in main",
            threads.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
        ));
    }
    match rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        Ok(()) => report.not_dumpable = true,
        Err(e) => report.notes.push(format!(
            "could not mark this process not dumpable ({e}): processes of the same user could read its memory"
        )),
    }
    report
}

fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The bounds of the original environment block: fields 50 and 51 of
/// `/proc/self/stat`.
fn block_bounds() -> Result<(usize, usize), String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let rest = stat
        .get(stat.rfind(')').ok_or("bad /proc/self/stat")? + 1..)
        .ok_or("bad /proc/self/stat")?;
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| -> Result<usize, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/self/stat has no field {n}"))
    };
    let (start, end) = (get(50)?, get(51)?);
    if start == 0 || end <= start {
        return Err("the kernel does not show where the environment block is".into());
    }
    Ok((start, end))
}

/// Whether `[start, end)` lies inside one readable and writable mapping.
fn writable_mapping(start: usize, end: usize) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|line| {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            return false;
        };
        perms.starts_with("rw") && lo <= start && end <= hi
    })
}

/// Overwrites every `NAME=value` of `captured` in the original block with NULs, then
/// checks `/proc/self/environ`.
fn scrub_block(captured: &[(OsString, OsString)]) -> Result<(), String> {
    let (start, end) = block_bounds()?;
    if !writable_mapping(start, end) {
        return Err("the block is not in a writable mapping".into());
    }
    let len = end - start;
    // SAFETY: [start, end) is this process's original environment block, which the
    // kernel laid out at exec and reports in /proc/self/stat; it was just checked to
    // lie inside a readable and writable mapping of this process. Only this thread
    // exists (checked by the caller), so nothing reads or writes it concurrently.
    #[allow(unsafe_code)]
    let block = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
    let mut offset = 0;
    while offset < block.len() {
        let entry_len = block[offset..]
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(block.len() - offset);
        let entry = &block[offset..offset + entry_len];
        let hit = captured.iter().any(|(name, _)| {
            let name = name.as_bytes();
            entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'='
        });
        if hit {
            // No pointer into these bytes is left: the variables were removed from
            // `environ` before this runs.
            block[offset..offset + entry_len].fill(0);
        }
        offset += entry_len + 1;
    }
    let now = std::fs::read("/proc/self/environ").map_err(|e| e.to_string())?;
    for (_, value) in captured {
        let value = value.as_bytes();
        if !value.is_empty() && now.windows(value.len()).any(|w| w == value) {
            return Err("a key still shows in /proc/self/environ".into());
        }
    }
    Ok(())
}
