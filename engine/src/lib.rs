//! Keel's engine: the events of a run, their codec, and (as it grows) the run
//! state, the agent loop, the replay executor and the runtime.

pub mod codec;
pub mod event;
pub mod ids;

pub use codec::{DecodeError, DecodeErrorKind, EncodeError, FORMAT_VERSION, decode, encode};
pub use event::{AgentSnapshot, Event, FinishKind, Resolution, RunStarted, Stamped, Text};
pub use ids::{CallId, ParseCallIdError, StepKey, Turn};
