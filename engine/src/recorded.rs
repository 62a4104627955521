//! Agents rebuilt from what a run recorded, for replaying its log with nothing
//! outside the store: no provider, no workspace, no key. Such an agent calls no
//! model and runs no tool; it carries what `decide` reads — the tools' names and
//! recovery policies, the stop conditions — and the recorded fingerprint.

use keel_providers::{SharedProvider, ToolDefinition};
use keel_tools::{CallContext, Recovery, Tool, ToolOutput, ToolSpec};

use crate::agent::{Agent, StopCondition};
use crate::event::AgentSnapshot;

/// A tool known only by its record.
struct RecordedTool {
    name: String,
    recovery: Recovery,
}

impl Tool for RecordedTool {
    type Args = serde_json::Value;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: String::new(),
            input_schema: serde_json::json!({}),
        }
    }

    fn recovery(&self) -> Recovery {
        self.recovery
    }

    async fn call(&self, _args: serde_json::Value, _ctx: CallContext) -> ToolOutput {
        ToolOutput::error(format!(
            "`{}` belongs to an agent rebuilt from a run's record for replay; it runs nothing",
            self.name
        ))
    }
}

/// Each tool's recovery policy in `snapshot`: as recorded, or the defaults for a
/// run that did not record them.
pub(crate) fn recovery_policies(snapshot: &AgentSnapshot) -> Vec<Recovery> {
    if snapshot.recovery.len() == snapshot.tools.len() {
        snapshot.recovery.clone()
    } else {
        snapshot.tools.iter().map(|t| default_recovery(t)).collect()
    }
}

/// The recovery policy of a tool whose run did not record one: the sandbox tools'
/// defaults (read-only tools re-run, every other tool is reported interrupted).
fn default_recovery(tool: &str) -> Recovery {
    match tool {
        "read" | "glob" | "grep" | "ask_user" => Recovery::Rerun,
        _ => Recovery::ReportInterrupted,
    }
}

/// A stop condition from its recorded description; `None` for a custom one, whose
/// check is code that no record holds.
pub fn parse_stop_condition(text: &str) -> Option<StopCondition> {
    let (name, arg) = text.strip_suffix(')')?.split_once('(')?;
    match name {
        "max_steps" => arg.parse().ok().map(StopCondition::MaxSteps),
        "max_tokens" => arg.parse().ok().map(StopCondition::MaxTokens),
        "executed_tool" => Some(StopCondition::ExecutedTool(arg.to_owned())),
        _ => None,
    }
}

impl Agent {
    /// The agent a run recorded (its first event, or the latest definition it
    /// adopted), rebuilt for replay: calls no model, runs no tool, and has the
    /// recorded fingerprint, so replaying a log against it checks the log against
    /// the definition it was recorded with. Custom stop conditions cannot be rebuilt
    /// from a record: a run that recorded one is replayed without it, and a stop it
    /// made shows as a divergence (register the real agent to replay such runs).
    pub fn from_snapshot(snapshot: &AgentSnapshot) -> Agent {
        let mut builder = Agent::builder(snapshot.id.clone())
            .model(snapshot.model.clone())
            .system_prompt(snapshot.system_prompt.clone())
            .max_tokens(snapshot.max_tokens);
        for (i, name) in snapshot.tools.iter().enumerate() {
            builder = builder.tool(RecordedTool {
                name: name.clone(),
                recovery: snapshot
                    .recovery
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| default_recovery(name)),
            });
        }
        for condition in &snapshot.stop_conditions {
            if let Some(c) = parse_stop_condition(condition) {
                builder = builder.stop_when(c);
            }
        }
        let definitions: Vec<ToolDefinition> = Vec::new();
        builder.finish(
            SharedProvider::new(crate::runtime::NoProvider),
            definitions,
            snapshot.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_conditions_parse_back_from_their_descriptions() {
        for c in [
            StopCondition::max_steps(30),
            StopCondition::max_tokens(9000),
            StopCondition::executed_tool("exec"),
        ] {
            let text = c.to_string();
            assert_eq!(parse_stop_condition(&text).unwrap().to_string(), text);
        }
        assert!(parse_stop_condition("custom(mine)").is_none());
        assert!(parse_stop_condition("max_steps(x)").is_none());
    }

    #[test]
    fn a_rebuilt_agent_keeps_the_recorded_fingerprint() {
        let agent = crate::testlog::agent(Some(StopCondition::max_steps(3)));
        let rebuilt = Agent::from_snapshot(agent.snapshot());
        assert_eq!(rebuilt.snapshot(), agent.snapshot());
        assert_eq!(rebuilt.tools().names(), agent.tools().names());
        assert_eq!(rebuilt.stop_conditions()[0].to_string(), "max_steps(3)");
    }
}
