//! The conversation sent to the model, derived from a run's state.
//!
//! Requests are not stored; they are derived from the log: the input, then each
//! response's content, then, once every call of a turn ended, one user message with
//! the turn's tool results in the order the model asked for them. A driver keeps one
//! [`Conversation`] and brings it up to date before each call, which costs O(new
//! content); the messages are shared with the request, not copied.

use std::sync::Arc;

use keel_providers::{ContentBlock, Message, Role};

use crate::event::Text;
use crate::state::{CallPhase, RunState};

/// The messages of a run's conversation so far.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    messages: Arc<Vec<Message>>,
    started: bool,
    /// The first turn not wholly in `messages`.
    next_turn: usize,
    /// Whether that turn's response is already in `messages`.
    response_in: bool,
}

impl Conversation {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends what `state` holds beyond what was appended before, and returns the
    /// messages. `text` gives the text of a tool output (blobs already read). Turns
    /// whose calls have not all ended contribute their response but no results yet.
    pub fn sync(&mut self, state: &RunState, text: &dyn Fn(&Text) -> String) -> Arc<Vec<Message>> {
        let messages = Arc::make_mut(&mut self.messages);
        if !self.started
            && let Some(started) = state.started()
        {
            messages.push(Message::user(started.input.clone()));
            self.started = true;
        }
        while let Some(turn) = state.turns().get(self.next_turn) {
            if !self.response_in {
                let Some(response) = &turn.response else {
                    break;
                };
                if !response.content.is_empty() {
                    messages.push(Message {
                        role: Role::Assistant,
                        content: response.content.clone(),
                    });
                }
                self.response_in = true;
            }
            if !turn.calls.is_empty() {
                if !turn.calls_finished() {
                    break;
                }
                let results = turn
                    .calls
                    .iter()
                    .filter_map(|c| match &c.phase {
                        CallPhase::Finished {
                            output, is_error, ..
                        } => Some(ContentBlock::ToolResult {
                            tool_use_id: c.tool_use_id.clone(),
                            content: text(output),
                            is_error: *is_error,
                        }),
                        _ => None,
                    })
                    .collect();
                messages.push(Message {
                    role: Role::User,
                    content: results,
                });
            }
            self.next_turn += 1;
            self.response_in = false;
        }
        self.messages.clone()
    }

    /// The first turn whose results are not in the conversation yet: outputs of this
    /// turn on are the ones the next `sync` may need.
    pub fn pending_turn(&self) -> usize {
        self.next_turn
    }
}
