//! Finding and killing every process a command started.
//!
//! A command runs as the leader of a new session (so its process group and session
//! ids equal its pid). Background jobs (`sleep 999 & disown`) stay in that group;
//! a fork bomb's copies too. Processes that left with `setsid` are found as long
//! as their ancestry leads to the command, or by a marker variable
//! (`KEEL_EXEC_ID`) every process of the command inherits in its environment, even
//! after its parent died and it was re-parented. The kill is a loop: scan `/proc`,
//! SIGKILL every target, until a scan finds none.
//!
//! What this cannot catch without kernel help: a process that both left the
//! session and cleared its environment before its parent died. With isolation on
//! and the privileges for it, commands run in their own PID namespace, where the
//! kernel kills every process when the command's shell exits; that is the airtight
//! form (see [`isolation`](super::isolation)).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rustix::process::{Pid, Signal};

/// One line of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
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
    let sid = rest.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgrp,
        sid,
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

/// The processes of the command rooted at `root`: its session and group, and every
/// descendant of it (escapees that are still children of the tree).
pub(crate) fn members(root: i32, procs: &[ProcInfo]) -> HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found: HashSet<i32> = procs
        .iter()
        .filter(|p| p.sid == root || p.pgrp == root || p.pid == root)
        .map(|p| p.pid)
        .collect();
    let mut stack: Vec<i32> = found.iter().copied().collect();
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                stack.push(*child);
            }
        }
    }
    found
}

/// Live processes in the command's session or group, counted until `limit` is
/// passed (then the count stops: it is only compared with the limit). Cheap enough
/// to run every few milliseconds: it reads `/proc/<pid>/stat` files only.
pub(crate) fn count_session(root: i32, limit: usize) -> usize {
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
        let Ok(text) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        if let Some(p) = parse_stat(&text)
            && !p.zombie
            && (p.sid == root || p.pgrp == root)
        {
            n += 1;
            if n > limit {
                break;
            }
        }
    }
    n
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

/// This process's session and group ids as `/proc` shows them, which is what
/// [`scan`] compares them with. Either is 0 when its leader lives outside this
/// process's PID namespace (a process started inside a container or `unshare
/// --pid` whose session began outside it); `getsid`/`getpgrp` report the same 0,
/// which `rustix` cannot hold in a `Pid`, so they are not used.
fn own_session_and_group() -> (i32, i32) {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| parse_stat(&text))
        .map_or((0, 0), |p| (p.sid, p.pgrp))
}

fn has_marker(pid: i32, marker: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|var| var == marker))
        .unwrap_or(false)
}

/// Kills every process of the command rooted at `root` (see the module docs).
/// Returns whether anything besides the command's shell was still running.
/// Blocking: call off the async executor.
pub(crate) fn kill_all(root: i32, marker: &str) -> bool {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let (my_sid, my_pgrp) = own_session_and_group();
    let marker = marker.as_bytes();
    let mut leftovers = false;
    let mut sessions: HashSet<i32> = HashSet::from([root]);
    // The group first, before anything slow: a fork bomb grows while we look.
    if let Some(pid) = Pid::from_raw(root) {
        leftovers = rustix::process::test_kill_process_group(pid).is_ok();
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
    for round in 0..200 {
        let procs = scan();
        let mut targets = members(root, &procs);
        for p in &procs {
            if sessions.contains(&p.sid) || (!targets.contains(&p.pid) && has_marker(p.pid, marker))
            {
                targets.insert(p.pid);
            }
        }
        let by_pid: HashMap<i32, &ProcInfo> = procs.iter().map(|p| (p.pid, p)).collect();
        let mut live = 0;
        let mut groups: HashSet<i32> = HashSet::from([root]);
        let mut singles = Vec::new();
        for pid in targets {
            let Some(info) = by_pid.get(&pid) else {
                continue;
            };
            if info.zombie || pid == me || pid <= 1 {
                continue;
            }
            if info.sid != my_sid && info.sid > 1 {
                sessions.insert(info.sid);
            }
            if info.pgrp != my_pgrp && info.pgrp > 1 {
                groups.insert(info.pgrp);
            }
            live += 1;
            singles.push(pid);
        }
        // Whole groups first: a group kill reaches every member at once, including
        // children forked while it is delivered (a fork bomb outruns one-by-one).
        for g in &groups {
            if let Some(g) = Pid::from_raw(*g) {
                let _ = rustix::process::kill_process_group(g, Signal::KILL);
            }
        }
        for pid in singles {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
            leftovers |= pid != root;
        }
        if live == 0 {
            break;
        }
        // Give the kernel a moment to deliver the signals and re-parent orphans
        // before looking again; the pauses grow in case something keeps forking.
        std::thread::sleep(Duration::from_millis(2 + round.min(20)));
    }
    leftovers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let p = parse_stat("1234 (a) b (c)) S 1 1234 1234 0 -1 4194560").unwrap();
        assert_eq!(
            (p.pid, p.ppid, p.pgrp, p.sid, p.zombie),
            (1234, 1, 1234, 1234, false)
        );
        let z = parse_stat("7 (x) Z 1 7 7 0").unwrap();
        assert!(z.zombie);
    }

    #[test]
    fn members_follow_sessions_and_ancestry() {
        let procs = [
            ProcInfo {
                pid: 10,
                ppid: 1,
                pgrp: 10,
                sid: 10,
                zombie: false,
            },
            ProcInfo {
                pid: 11,
                ppid: 10,
                pgrp: 10,
                sid: 10,
                zombie: false,
            },
            // left the session, still a child of 11
            ProcInfo {
                pid: 12,
                ppid: 11,
                pgrp: 12,
                sid: 12,
                zombie: false,
            },
            ProcInfo {
                pid: 13,
                ppid: 12,
                pgrp: 12,
                sid: 12,
                zombie: false,
            },
            // unrelated
            ProcInfo {
                pid: 20,
                ppid: 1,
                pgrp: 20,
                sid: 20,
                zombie: false,
            },
        ];
        let m = members(10, &procs);
        assert_eq!(m, HashSet::from([10, 11, 12, 13]));
    }
}
