//! The directory walk `glob` and `grep` share: ripgrep's `ignore` walker (parallel,
//! `.gitignore`/`.ignore` respected even outside a git repository, hidden files
//! included, `.git` skipped, symlinks not followed), with a budget of entries, time
//! and cancellation so a huge tree or a loop cannot hang a call.
//!
//! The walker lists names by path. Names are never trusted for access: `grep` opens
//! every file beneath the workspace handle (refusing symlinks), and `glob` re-opens
//! each result it returns the same way, so a directory swapped for a symlink during
//! the walk can neither leak content nor put an outside name in the results.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ignore::overrides::Override;
use ignore::{WalkBuilder, WalkState};
use tokio_util::sync::CancellationToken;

use crate::config::FileLimits;

/// A walk over `search_abs` with the sandbox's rules.
pub(crate) fn walker(search_abs: &Path, overrides: Option<Override>) -> WalkBuilder {
    let mut b = WalkBuilder::new(search_abs);
    b.hidden(false)
        .parents(true)
        .ignore(true)
        .git_ignore(true)
        .git_global(true)
        .git_exclude(true)
        .require_git(false)
        .follow_links(false)
        .threads(threads())
        .filter_entry(|e| e.file_name() != ".git");
    if let Some(o) = overrides {
        b.overrides(o);
    }
    b
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(8)
}

/// How much a walk may do before it stops with a reason.
#[derive(Debug)]
pub(crate) struct Budget {
    entries: AtomicU64,
    max_entries: u64,
    deadline: Instant,
    timeout: Duration,
    cancel: CancellationToken,
    stopped: Mutex<Option<String>>,
}

impl Budget {
    pub fn new(limits: &FileLimits, cancel: CancellationToken) -> Self {
        let timeout = Duration::from_secs(limits.search_timeout_secs.max(1));
        Self {
            entries: AtomicU64::new(0),
            max_entries: limits.max_walk_entries,
            deadline: Instant::now() + timeout,
            timeout,
            cancel,
            stopped: Mutex::new(None),
        }
    }

    /// Counts one entry; `Quit` once the budget is spent.
    pub fn tick(&self) -> WalkState {
        let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        let reason = if n > self.max_entries {
            Some(format!(
                "it visited the limit of {} directory entries",
                self.max_entries
            ))
        } else if n.is_multiple_of(64) && Instant::now() > self.deadline {
            Some(format!(
                "it ran for the limit of {} s",
                self.timeout.as_secs()
            ))
        } else if self.cancel.is_cancelled() {
            Some("the run was cancelled".to_owned())
        } else {
            None
        };
        match reason {
            Some(r) => {
                let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
                stopped.get_or_insert(r);
                WalkState::Quit
            }
            None => WalkState::Continue,
        }
    }

    /// Why the walk stopped early, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Cuts `text` to at most `max` characters, saying how long it was.
pub(crate) fn cut_line(text: &str, max: usize) -> String {
    // A line of at most `max` bytes has at most `max` characters: no need to count.
    if text.len() <= max || text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… [line cut: {} bytes in total]", text.len())
}
