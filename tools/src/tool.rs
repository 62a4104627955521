//! The `Tool` trait, its object-safe form, and what calls return.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::approval::{AllowRule, ApprovalForm};

/// What the model is told about a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON schema of its arguments.
    pub input_schema: serde_json::Value,
}

/// What to do with a call that started but never finished because the process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recovery {
    /// Run it again: the tool is idempotent (reads, searches).
    Rerun,
    /// Ask the person again whether to run it.
    AskAgain,
    /// Tell the model the call was interrupted and may or may not have taken effect.
    ReportInterrupted,
}

/// Whether a call may run.
#[derive(Clone, Debug, PartialEq)]
pub enum Approval {
    /// It may run without asking.
    NotNeeded,
    /// A person must approve it first; show them this form.
    Needed(Box<ApprovalForm>),
    /// It may not run at all (a deny rule, a protected path); the model is told why.
    Refused(String),
}

/// The result of a call, as the model will see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The text returned to the model.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed result, with a message the model can act on.
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

/// What a call knows about where it runs.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The run's id, as text.
    pub run: String,
    /// The call's id within the run, as text.
    pub call_id: String,
    /// Fires when the run is cancelled; long calls should stop early.
    pub cancel: CancellationToken,
}

impl CallContext {
    /// A context for calls outside any run (tests, direct use).
    pub fn detached() -> Self {
        Self {
            run: String::new(),
            call_id: String::new(),
            cancel: CancellationToken::new(),
        }
    }
}

/// A tool with typed arguments.
///
/// `is_mutating` defaults to the safe answer (true), and the recovery policy of a
/// mutating tool defaults to reporting an interrupted call to the model rather than
/// running it twice. Approval defaults to "always ask" for mutating tools.
pub trait Tool: Send + Sync + 'static {
    /// The arguments, parsed from the model's JSON.
    type Args: DeserializeOwned + Send;

    /// Name, description and argument schema.
    fn spec(&self) -> ToolSpec;

    /// Whether a call may change anything outside Keel.
    fn is_mutating(&self) -> bool {
        true
    }

    /// What to do with a call interrupted by a crash.
    fn recovery(&self) -> Recovery {
        if self.is_mutating() {
            Recovery::ReportInterrupted
        } else {
            Recovery::Rerun
        }
    }

    /// Whether this call needs a person's approval, given the rules remembered for
    /// this run (from earlier "always" answers).
    fn approval(
        &self,
        _args: &Self::Args,
        raw: &serde_json::Value,
        rules: &[AllowRule],
    ) -> Approval {
        let name = self.spec().name;
        if !self.is_mutating()
            || rules
                .iter()
                .any(|r| matches!(r, AllowRule::Tool { tool } if *tool == name))
        {
            return Approval::NotNeeded;
        }
        Approval::Needed(Box::new(ApprovalForm {
            title: "APPROVAL REQUIRED".to_owned(),
            tool: name.clone(),
            context: crate::approval::FormContext::Call {
                args: serde_json::to_string_pretty(raw).unwrap_or_default(),
            },
            fields: Vec::new(),
            digest: crate::approval::approval_digest(&name, raw, ""),
        }))
    }

    /// The rules a person may remember by answering "always" to this call, each
    /// with the words that describe it, narrowest first: a plain "always" stores the
    /// first; a broader one is stored only when the person picks it (a decision
    /// naming a rule not in this list is refused). By default: every call of this
    /// tool.
    fn always_rules(&self, _args: &Self::Args) -> Vec<(AllowRule, String)> {
        let tool = self.spec().name;
        let words = format!("any `{tool}` call in this run");
        vec![(AllowRule::Tool { tool }, words)]
    }

    /// Rebuilds what the tool remembers about a run from its log, when the run is
    /// continued in a process that did not execute its earlier calls (a resume, a
    /// recovery after a crash): called once for every earlier call of this tool that
    /// finished without error, in order, with its arguments. The sandbox's file
    /// tools rebuild the read tracker here, so a file the agent read, wrote or edited
    /// counts as seen after a restart too. Default: nothing.
    fn restore(&self, _run: &str, _args: &Self::Args) {}

    /// Runs the call. Failures the model should see are `ToolOutput::error`.
    fn call(&self, args: Self::Args, ctx: CallContext) -> impl Future<Output = ToolOutput> + Send;
}

/// The object-safe form of [`Tool`]: arguments as JSON. Every `Tool` is one.
pub trait DynTool: Send + Sync + 'static {
    /// See [`Tool::spec`].
    fn spec(&self) -> ToolSpec;
    /// See [`Tool::is_mutating`].
    fn is_mutating(&self) -> bool;
    /// See [`Tool::recovery`].
    fn recovery(&self) -> Recovery;
    /// Parses the arguments and checks approval. Unparseable arguments are an `Err`
    /// with a message for the model.
    fn approval_json(
        &self,
        args: &serde_json::Value,
        rules: &[AllowRule],
    ) -> Result<Approval, String>;
    /// See [`Tool::always_rules`].
    fn always_rules_json(
        &self,
        args: &serde_json::Value,
    ) -> Result<Vec<(AllowRule, String)>, String>;
    /// The rule a plain "always" stores: the first of [`Tool::always_rules`].
    fn always_rule_json(&self, args: &serde_json::Value) -> Result<AllowRule, String> {
        self.always_rules_json(args)?
            .into_iter()
            .next()
            .map(|(rule, _)| rule)
            .ok_or_else(|| "this call cannot be allowed \"always\"".to_owned())
    }
    /// Parses the arguments and runs the call; unparseable arguments give an error
    /// output. Every secret value Keel holds is masked in the result (see
    /// [`secrets`](crate::secrets)), as in the forms of [`DynTool::approval_json`].
    fn call_json(&self, args: serde_json::Value, ctx: CallContext) -> BoxFuture<'_, ToolOutput>;
    /// [`Tool::restore`] with JSON arguments (arguments that do not parse are skipped).
    fn restore_json(&self, run: &str, args: &serde_json::Value);
}

/// Checks the arguments against the tool's schema (so the model hears which field is
/// wrong), then parses them.
fn parse_args<T: DeserializeOwned>(spec: &ToolSpec, args: &serde_json::Value) -> Result<T, String> {
    let tool = &spec.name;
    crate::schema::validate(&spec.input_schema, args)
        .map_err(|e| format!("invalid arguments for `{tool}`: {e}"))?;
    serde_json::from_value(args.clone()).map_err(|e| format!("invalid arguments for `{tool}`: {e}"))
}

impl<T: Tool> DynTool for T {
    fn spec(&self) -> ToolSpec {
        Tool::spec(self)
    }
    fn is_mutating(&self) -> bool {
        Tool::is_mutating(self)
    }
    fn recovery(&self) -> Recovery {
        Tool::recovery(self)
    }
    fn approval_json(
        &self,
        args: &serde_json::Value,
        rules: &[AllowRule],
    ) -> Result<Approval, String> {
        let parsed: T::Args = parse_args(&Tool::spec(self), args)?;
        // Whatever the tool, no secret Keel holds leaves it in a form.
        Ok(match Tool::approval(self, &parsed, args, rules) {
            Approval::Needed(mut form) => {
                crate::secrets::mask_form(&mut form);
                Approval::Needed(form)
            }
            Approval::Refused(mut reason) => {
                crate::secrets::global().mask_in_place(&mut reason);
                Approval::Refused(reason)
            }
            Approval::NotNeeded => Approval::NotNeeded,
        })
    }
    fn always_rules_json(
        &self,
        args: &serde_json::Value,
    ) -> Result<Vec<(AllowRule, String)>, String> {
        let parsed: T::Args = parse_args(&Tool::spec(self), args)?;
        Ok(Tool::always_rules(self, &parsed))
    }
    fn restore_json(&self, run: &str, args: &serde_json::Value) {
        if let Ok(parsed) = serde_json::from_value::<T::Args>(args.clone()) {
            Tool::restore(self, run, &parsed);
        }
    }
    fn call_json(&self, args: serde_json::Value, ctx: CallContext) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let mut output = match parse_args::<T::Args>(&Tool::spec(self), &args) {
                Ok(parsed) => Tool::call(self, parsed, ctx).await,
                Err(message) => ToolOutput::error(message),
            };
            // Whatever the tool, no secret Keel holds leaves it in a result.
            crate::secrets::global().mask_in_place(&mut output.content);
            output
        })
    }
}

/// A shared handle to any tool.
pub type SharedTool = Arc<dyn DynTool>;
