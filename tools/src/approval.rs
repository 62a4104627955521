//! What a person sees when a tool call waits for them, and what they can answer.
//!
//! These types are recorded in the run's log (through postcard), so they use only
//! plain structs and externally tagged enums; JSON travels as text.

use serde::{Deserialize, Serialize};

/// What a person needs to decide on a tool call, or to answer a question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalForm {
    /// A headline, e.g. `COMMAND APPROVAL REQUIRED`.
    pub title: String,
    /// The tool that wants to run.
    pub tool: String,
    /// What exactly it wants to do.
    pub context: FormContext,
    /// The fields to answer. Approvals have none beyond approve/deny and a note;
    /// questions (`ask_user`) list theirs here.
    pub fields: Vec<Field>,
    /// A digest of what was shown (tool, arguments, directory). A decision may name
    /// it, and is refused if it names another.
    pub digest: String,
}

impl ApprovalForm {
    /// Checks a decision against this form: a decision that names a digest must
    /// name this form's (a person approved what was shown, and nothing else).
    pub fn check_decision(&self, named_digest: &str) -> Result<(), String> {
        if named_digest == self.digest {
            Ok(())
        } else {
            Err(format!(
                "the decision is for another request (digest {}), not for this `{}` call (digest {}); refused",
                short_digest(named_digest),
                self.tool,
                short_digest(&self.digest)
            ))
        }
    }
}

fn short_digest(d: &str) -> &str {
    d.get(..12).unwrap_or(d)
}

/// The specifics of a pending call, per kind of tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormContext {
    /// A shell command.
    Command {
        /// The command line, exactly as it will run.
        command: String,
        /// The directory it runs in.
        cwd: String,
        /// Why approval is needed (no rule matched, a construct the policy never
        /// allows, …).
        reason: String,
        /// The allow rule that matched part of it, if any.
        matched_rule: Option<String>,
    },
    /// Writing a whole file.
    Write {
        /// The file.
        path: String,
        /// The new content (cut for display when very large).
        content: String,
        /// Whether the file exists and will be replaced.
        overwrites: bool,
    },
    /// Editing part of a file.
    Edit {
        /// The file.
        path: String,
        /// A unified diff of the change.
        diff: String,
    },
    /// A question for the person (`ask_user`).
    Question {
        /// The question.
        question: String,
    },
    /// Any other tool: its arguments as pretty JSON text.
    Call {
        /// The arguments.
        args: String,
    },
}

/// A field of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The key of the answer.
    pub name: String,
    /// What to show the person.
    pub label: String,
    /// What kind of value it takes.
    pub kind: FieldKind,
    /// Whether an answer must give it.
    pub required: bool,
}

/// The kind of value a field takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// Free text.
    Text,
    /// A number.
    Number,
    /// Yes or no.
    Boolean,
    /// One of the options.
    Select {
        /// The options.
        options: Vec<String>,
    },
}

/// A standing permission recorded when a person answers "always": later calls it
/// covers run without asking, for the rest of the run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllowRule {
    /// Every call of this tool.
    Tool {
        /// The tool's name.
        tool: String,
    },
    /// Commands whose every simple command starts with exactly these argv tokens.
    ExecPrefix {
        /// The tokens.
        argv: Vec<String>,
    },
    /// A rule only the named tool understands.
    Custom {
        /// The tool's name.
        tool: String,
        /// The rule, as the tool wrote it.
        rule: String,
    },
}

impl std::fmt::Display for AllowRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowRule::Tool { tool } => write!(f, "any `{tool}` call"),
            AllowRule::ExecPrefix { argv } => write!(f, "commands starting `{}`", argv.join(" ")),
            AllowRule::Custom { tool, rule } => write!(f, "{tool}: {rule}"),
        }
    }
}

/// Computes the digest of what a form shows: the tool, its arguments and directory.
pub fn approval_digest(tool: &str, args: &serde_json::Value, cwd: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [tool, &args.to_string(), cwd] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}
