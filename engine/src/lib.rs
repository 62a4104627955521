//! Keel's engine: the events of a run and their codec, the run state (`fold`), the
//! pure executor (`decide`), the replay check, and the runtime that performs
//! actions durably.
//!
//! A local coding agent whose commands and file changes wait for a person's
//! approval (after the Polos local-coding-agent guide), in Rust:
//!
//! ```no_run
//! use futures::StreamExt;
//! use keel_engine::{Agent, Decision, Keel, RunEvent, StopCondition};
//!
//! # async fn demo(provider: keel_providers::SharedProvider, tools: keel_tools::ToolRegistry)
//! # -> keel_engine::Result<()> {
//! let agent = Agent::builder("local_coding_agent")
//!     .shared_provider(provider)
//!     .model("claude-sonnet-4-5")
//!     .system_prompt("You are a coding agent with access to the local filesystem.")
//!     .tools(tools)
//!     .stop_when(StopCondition::max_steps(30))
//!     .build();
//!
//! let keel = Keel::new(keel_storage::MemoryStore::new());
//! keel.register(agent.clone());
//! keel.recover().await?; // runs a crash interrupted continue here
//!
//! let run = keel.invoke(&agent, "Create hello.js that prints 'Hello, world!' and run it.").await?;
//! let mut events = run.events();
//! while let Some(event) = events.next().await {
//!     match event? {
//!         RunEvent::TextDelta { text, .. } => print!("{text}"),
//!         RunEvent::ApprovalRequested { step, form, answered: false, .. } => {
//!             println!("\n{}: {:?}", form.title, form.context);
//!             run.resume(&step, Decision::approve()).await?;
//!         }
//!         event if event.is_terminal() => break,
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod agent;
mod ask_user;
pub mod codec;
mod conversation;
mod decide;
mod decision;
mod driver;
mod error;
pub mod event;
pub mod ids;
mod recorded;
mod replay;
mod runtime;
mod state;
mod stream;
#[cfg(test)]
mod testlog;

pub use agent::{Agent, AgentBuilder, Limits, StopCondition};
pub use ask_user::{ASK_USER, AskUser, AskUserArgs, FieldArg, validate_answer};
pub use codec::{
    DecodeError, DecodeErrorKind, EncodeError, FORMAT_VERSION, OLDEST_FORMAT, decode, encode,
};
pub use conversation::Conversation;
pub use decide::{Action, check_agent, check_recorded, decide, interrupted_message};
pub use decision::{Decision, PendingStep, RunOutcome};
pub use error::{Error, NonDeterminism, Result};
pub use event::{
    AgentChanged, AgentSnapshot, Definition, DigestScheme, Event, FinishKind, Resolution,
    RunStarted, Stamped, Text,
};
pub use ids::{CallId, Digest, ParseCallIdError, ParseDigestError, StepKey, Turn};
pub use recorded::parse_stop_condition;
pub use replay::{
    ReplayReport, check_events, check_recorded_events, check_recorded_records, check_records,
    replay, replay_events,
};
pub use runtime::{Keel, Rebuilder, RecoveryReport, RunHandle};
pub use state::{CallPhase, CallState, RunEnd, RunState, TurnState};
pub use stream::RunEvent;
