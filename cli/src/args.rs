//! The command line's shape.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keel: a durable runtime for AI agents.
///
/// Runs agents whose every step is recorded; answers their approvals; inspects,
/// replays, forks and resumes their runs.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, long_about = None)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    /// The store directory [default: .keel].
    #[arg(long, global = true, env = "KEEL_STORE")]
    pub store: Option<PathBuf>,

    /// The configuration file declaring agents (default: ./keel.toml if it exists).
    #[arg(long, global = true, env = "KEEL_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The exit statuses, shown in `--help`.
pub const EXIT_CODES: &str = "Exit status:
  0  the run completed (or the command succeeded)
  1  the run failed or was cancelled, or the command failed
  2  usage or configuration error
  3  the run waits for an approval and there is no terminal to ask (see the printed `keel approve` command)
  4  `keel replay` found the run is not deterministic (KEEL-E100; both sides shown)
  130 interrupted by Ctrl-C (the run stays resumable)";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent on a prompt, streaming its work and asking for approvals.
    Run(RunArgs),
    /// List the runs in the store.
    Runs(JsonFlag),
    /// Show a run's timeline: LLM calls, tool calls, approvals.
    Show(ShowArgs),
    /// Print a run's events; with --follow, keep printing until it ends.
    Log(LogArgs),
    /// Rebuild a run from its log (calling no LLM and no tool) and check it is
    /// deterministic under the definition it recorded (or, with --against, a
    /// current one). Needs nothing outside the store.
    Replay(ReplayArgs),
    /// Start a new run from the first events of another (time travel).
    Fork(ForkArgs),
    /// Continue an unfinished run (after a crash, or after approvals).
    Resume(ResumeArgs),
    /// Answer a waiting run's approval or question, durably.
    Approve(ApproveArgs),
    /// Cancel a run.
    Cancel(CancelArgs),
    /// Print a run's whole log as JSON.
    Export(RunRef),
    /// A local coding agent end to end, offline: a recorded coding session through the
    /// real tools, approvals and store, then its timeline and replay.
    Demo(DemoArgs),
    /// Own the store and serve its control socket until stopped (Ctrl-C).
    Serve,
    /// Serve the dashboard and the HTTP API (prints the URL with a fresh token).
    Ui(UiArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A run named on the command line.
#[derive(Debug, Args)]
pub struct RunRef {
    /// The run's id, a unique prefix of it, or `last`.
    pub run: String,
}

/// Overrides of the agent's definition, shared by `run`, `resume --adopt` and `fork`.
#[derive(Debug, Args, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProviderArgs {
    /// The provider: anthropic, openai or scripted.
    #[arg(long)]
    pub provider: Option<String>,
    /// The model.
    #[arg(long)]
    pub model: Option<String>,
    /// The provider's base URL (e.g. an OpenAI-compatible server).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Play responses from this script file (the scripted provider).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// The workspace directory the tools are confined to.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The system prompt (replaces the agent's).
    #[arg(long, value_name = "TEXT")]
    pub system_prompt: Option<String>,
}

impl ProviderArgs {
    /// Whether any override is given.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// The overrides with their paths made absolute (relative to the current
    /// directory), to hand to another process.
    pub fn absolute(&self) -> std::io::Result<Self> {
        let cwd = std::env::current_dir()?;
        Ok(Self {
            script: self.script.as_ref().map(|p| cwd.join(p)),
            workspace: self.workspace.as_ref().map(|p| cwd.join(p)),
            ..self.clone()
        })
    }
}

/// How a run is driven at the terminal, shared by `run` and `resume`.
#[derive(Debug, Args, Clone, Default)]
pub struct DriveArgs {
    /// Approve every approval without asking (unattended runs).
    #[arg(long)]
    pub approve_all: bool,
    /// Print the event stream as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `keel run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent (from keel.toml, or the built-in `coding_agent`).
    pub agent: String,
    /// The prompt (read from standard input when absent and not a terminal).
    pub prompt: Option<String>,
    /// Provider overrides.
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Driving.
    #[command(flatten)]
    pub drive: DriveArgs,
}

/// `keel replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// Check against the run's agent as this configuration file (keel.toml)
    /// defines it now, instead of the definition the run recorded.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
}

/// `keel show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `keel log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// Keep printing new events until the run ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `keel fork`.
#[derive(Debug, Args)]
pub struct ForkArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// How many events of the run the fork starts from (as numbered by `keel show`).
    #[arg(long)]
    pub at: u64,
    /// Changes to the recorded definition for the fork (recorded in the fork's
    /// first events); paths are relative to the current directory.
    #[command(flatten)]
    pub provider: ProviderArgs,
}

/// `keel resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// Adopt the agent as the configuration (and the flags below) define it now,
    /// instead of the definition the run recorded; the change is recorded in the
    /// run (`keel show` lists it).
    #[arg(long)]
    pub adopt: bool,
    /// Changes to the definition, with --adopt (or for runs recorded before runs
    /// carried their definition).
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Driving.
    #[command(flatten)]
    pub drive: DriveArgs,
}

/// `keel approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// The step to answer (default: the one the run waits at).
    #[arg(long)]
    pub step: Option<String>,
    /// Deny instead of approving.
    #[arg(long, conflicts_with_all = ["always", "always_prefix"])]
    pub deny: bool,
    /// Approve, and allow exactly this call again for the rest of the run (for a
    /// command: this command line in this directory).
    #[arg(long)]
    pub always: bool,
    /// Approve, and allow for the rest of the run any command that starts with this
    /// one's words, in the same directory (its further arguments are still checked).
    #[arg(long, conflicts_with = "always")]
    pub always_prefix: bool,
    /// A note fed back to the model.
    #[arg(long)]
    pub note: Option<String>,
    /// For a question: the answer, as a JSON object of field values (or plain text
    /// for a single free-text field).
    #[arg(long)]
    pub answer: Option<String>,
}

/// `keel cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunRef,
    /// Why.
    #[arg(long, default_value = "cancelled with `keel cancel`")]
    pub reason: String,
}

/// `keel demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's workspace and store go.
    #[arg(long, default_value = "keel-demo")]
    pub dir: PathBuf,
    /// Approve every step without asking (the default without a terminal).
    #[arg(long)]
    pub approve_all: bool,
}

/// `keel ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "HOST:PORT")]
    pub addr: String,
    /// Allow an address reachable from other machines (plain HTTP: see the warning).
    #[arg(long)]
    pub allow_remote: bool,
}
