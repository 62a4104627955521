//! Filtering and paging shared by every [`crate::Source`]: the runs list (newest
//! first, cursor = the last id shown; run ids are UUIDv7, so they sort by start
//! time) and what a run waits at, read from the end of its log.

use keel_engine::Event;
use keel_storage::{RunId, RunInfo, RunStatus};

use crate::error::{Error, Result};
use crate::source::{Entry, Link, MAX_PAGE, RunQuery, RunRow, Waiting, parse_statuses};

/// The filters of a query, parsed once.
#[derive(Debug)]
pub struct Filter {
    statuses: Vec<RunStatus>,
    agent: Option<String>,
    text: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    cursor: Option<RunId>,
    limit: usize,
}

impl Filter {
    /// Parses a query; a bad status or cursor is a `BadRequest`.
    pub fn new(query: &RunQuery) -> Result<Self> {
        let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(c.parse::<RunId>().map_err(|e| {
                Error::BadRequest(format!("`cursor` is not a run id from `next`: {e}"))
            })?),
            None => None,
        };
        Ok(Self {
            statuses: query
                .status
                .as_deref()
                .map(parse_statuses)
                .transpose()?
                .unwrap_or_default(),
            agent: query.agent.clone().filter(|a| !a.is_empty()),
            text: query
                .text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_lowercase),
            since: query.since,
            until: query.until,
            cursor,
            limit: query.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        })
    }

    fn matches(&self, info: &RunInfo) -> bool {
        let Some(s) = &info.summary else {
            return false;
        };
        (self.statuses.is_empty() || self.statuses.contains(&s.status))
            && self.agent.as_ref().is_none_or(|a| *a == s.agent)
            && self.since.is_none_or(|t| s.created_at.0 >= t)
            && self.until.is_none_or(|t| s.created_at.0 < t)
            && self.text.as_ref().is_none_or(|t| {
                s.title.to_lowercase().contains(t)
                    || s.agent.to_lowercase().contains(t)
                    || info.run.to_string().contains(t.as_str())
            })
    }

    /// The page of `infos` (in any order) this filter selects: rows newest first,
    /// the cursor of the next page, and how many match in all.
    pub fn page(&self, infos: &[RunInfo]) -> (Vec<RunRow>, Option<String>, usize) {
        let mut matching: Vec<&RunInfo> = infos.iter().filter(|i| self.matches(i)).collect();
        matching.sort_unstable_by_key(|i| std::cmp::Reverse(i.run));
        let total = matching.len();
        let start = match self.cursor {
            Some(c) => matching.partition_point(|i| i.run >= c),
            None => 0,
        };
        let rows: Vec<RunRow> = matching[start..]
            .iter()
            .take(self.limit)
            .filter_map(|i| RunRow::from_info(i))
            .collect();
        let next = (start + rows.len() < total)
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        (rows, next, total)
    }
}

/// The runs forked from `run`, in the order they were made.
pub fn children(infos: &[RunInfo], run: RunId) -> Vec<Link> {
    let mut links: Vec<Link> = infos
        .iter()
        .filter_map(|i| {
            let (parent, at) = i.summary.as_ref()?.parent?;
            (parent == run).then_some(Link {
                run: i.run,
                at: at.0,
            })
        })
        .collect();
    links.sort_by_key(|l| l.run);
    links
}

/// What a run waits at, from the end of its log. A run waits only at the calls of
/// its last response, so `tail` needs to reach back to its last `LlmResponded` (or
/// the log's start); returns `None` when it does not.
pub fn waiting(tail: &[Entry]) -> Option<Vec<Waiting>> {
    let start = tail
        .iter()
        .rposition(|e| matches!(e.event, Event::LlmResponded { .. }))
        .or_else(|| (tail.first()?.seq == 0).then_some(0))?;
    let mut open: Vec<Waiting> = Vec::new();
    for entry in &tail[start..] {
        match &entry.event {
            Event::ApprovalRequested { call, step, form } => open.push(Waiting {
                step: step.clone(),
                call: call.to_string(),
                seq: entry.seq,
                form: (**form).clone(),
            }),
            Event::ApprovalResolved { step, .. } => open.retain(|w| w.step != *step),
            Event::ToolFinished { call, .. } => {
                let call = call.to_string();
                open.retain(|w| w.call != call);
            }
            e if e.is_terminal() => open.clear(),
            _ => {}
        }
    }
    Some(open)
}
