//! Finding and killing a command's processes from outside, through `/proc`.
//!
//! Every process a command starts descends from one process Keel started: the
//! shell, pid 1 of the command's PID namespace, or the supervisor, a child
//! subreaper (see [`launch`](super::launch)). An orphan is re-parented to that
//! namespace's pid 1 or to the subreaper, never past it, so "the command's
//! processes" is exactly "the descendants of that process", found by following
//! parent pids. Nothing depends on anything a process could change about itself
//! (its session, its group, its environment).
//!
//! In the namespaced shape the kernel kills them all when the shell exits; these
//! functions serve the supervised shape, and the count of a fork bomb.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rustix::process::{Pid, Signal};

/// One line of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub zombie: bool,
}

fn parse_stat(text: &str) -> Option<ProcInfo> {
    // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parens.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgrp,
        zombie: state == "Z" || state == "X",
    })
}

/// Every process visible in `/proc`.
pub(crate) fn scan() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let name = e.file_name();
        let name = name.to_str()?;
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
        parse_stat(&text)
    })
    .collect()
}

/// The descendants of `root` (not `root` itself) among `procs`.
pub(crate) fn descendants(root: i32, procs: &[ProcInfo]) -> HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found = HashSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if *child != root && found.insert(*child) {
                stack.push(*child);
            }
        }
    }
    found
}

/// The children of `pid`, from `/proc/<pid>/task/<pid>/children` (one small
/// read; empty where the kernel does not offer the file).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live descendants of `root`, counted until `limit` is passed.
pub(crate) fn count_tree(root: i32, limit: usize) -> usize {
    let procs = scan();
    let live: Vec<ProcInfo> = procs.into_iter().filter(|p| !p.zombie).collect();
    descendants(root, &live).len().min(limit + 1)
}

/// Tasks (threads) on the whole system, from `/proc/loadavg`: one read of global
/// counters, which stays fast while a fork bomb makes per-process files slow.
pub(crate) fn host_tasks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    field.split_once('/')?.1.parse().ok()
}

/// Tasks (threads) belonging to this process's real user, as `RLIMIT_NPROC` counts
/// them.
pub(crate) fn user_tasks() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            // Field 20 of stat is the thread count.
            n += std::fs::read_to_string(format!("/proc/{name}/stat"))
                .ok()
                .and_then(|t| {
                    let rest = t.get(t.rfind(')')? + 1..)?;
                    rest.split_whitespace().nth(17)?.parse::<u64>().ok()
                })
                .unwrap_or(1);
        }
    }
    n
}

/// This process's group as `/proc` shows it (0 when its leader lives outside this
/// PID namespace).
fn own_group() -> i32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| parse_stat(&text))
        .map_or(0, |p| p.pgrp)
}

/// Kills every descendant of `root` (not `root` itself), and their process groups,
/// until a scan finds none. Returns whether any was found. Blocking.
pub(crate) fn kill_tree(root: i32) -> bool {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let my_group = own_group();
    let mut found = false;
    for round in 0..200 {
        let procs = scan();
        let by_pid: HashMap<i32, &ProcInfo> = procs.iter().map(|p| (p.pid, p)).collect();
        let targets: Vec<i32> = descendants(root, &procs)
            .into_iter()
            .filter(|pid| *pid != me && by_pid.get(pid).is_some_and(|p| !p.zombie))
            .collect();
        if targets.is_empty() {
            break;
        }
        found = true;
        // Whole groups first: a group kill reaches every member at once, including
        // children forked while it is delivered (a fork bomb outruns one-by-one).
        let groups: HashSet<i32> = targets
            .iter()
            .filter_map(|pid| by_pid.get(pid).map(|p| p.pgrp))
            .filter(|g| *g > 1 && *g != my_group && *g != root)
            .collect();
        for g in groups {
            if let Some(g) = Pid::from_raw(g) {
                let _ = rustix::process::kill_process_group(g, Signal::KILL);
            }
        }
        for pid in targets {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
        // Give the kernel a moment to deliver the signals and re-parent orphans
        // before looking again; the pauses grow in case something keeps forking.
        std::thread::sleep(Duration::from_millis(1 + round.min(20)));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            pgrp: pid,
            zombie: false,
        }
    }

    #[test]
    fn parses_stat_with_odd_names() {
        let p = parse_stat("1234 (a) b (c)) S 1 1234 1234 0 -1 4194560").unwrap();
        assert_eq!((p.pid, p.ppid, p.pgrp, p.zombie), (1234, 1, 1234, false));
        let z = parse_stat("7 (x) Z 1 7 7 0").unwrap();
        assert!(z.zombie);
    }

    #[test]
    fn descendants_follow_parents_only() {
        let procs = [
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 12),
            p(20, 1),
            p(21, 20),
        ];
        assert_eq!(descendants(10, &procs), HashSet::from([11, 12, 13]));
        assert_eq!(descendants(13, &procs), HashSet::new());
    }
}
