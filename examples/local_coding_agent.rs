//! A local coding agent whose commands and file changes wait for a person's approval
//! (after the Polos local-coding-agent guide), in Rust.
//!
//! Defines a coding agent whose six sandbox tools run on this machine, confined to
//! `./workspace`; invokes it with streaming; and answers every approval at the
//! terminal. Every step is durable: kill it at any moment and run it again — it picks
//! up the interrupted run (`recover`) without paying for an LLM call twice.
//!
//! ```sh
//! export ANTHROPIC_API_KEY=...
//! cargo run --example local_coding_agent -- "Create hello.js that prints 'Hello, world!' and run it."
//! ```
//! Offline, with the recorded demo session instead of Claude:
//! `KEEL_SCRIPT=providers/scripts/demo_coding_session.json cargo run --example local_coding_agent`.

use std::io::{BufRead, Write};

use anyhow::Context;
use futures::StreamExt;
use keel::engine::{Agent, Decision, Keel, PendingStep, RunEvent, RunOutcome, StopCondition};
use keel::providers::{Anthropic, Scripted, SharedProvider};
use keel::storage::SledStore;
use keel::tools::{FormContext, SandboxConfig, sandbox_tools};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let workspace = std::env::current_dir()?.join("workspace");
    std::fs::create_dir_all(&workspace)?;

    // The agent: sandbox tools that run locally, confined to the workspace.
    let mut config = SandboxConfig::default();
    config.local.cwd = workspace.clone();
    config.local.path_restriction = Some(workspace.clone());
    let tools = sandbox_tools(config)?;
    let provider = match std::env::var("KEEL_SCRIPT") {
        Ok(path) => SharedProvider::new(Scripted::from_file(&path)?),
        Err(_) => SharedProvider::new(
            Anthropic::from_env().context("set ANTHROPIC_API_KEY (or KEEL_SCRIPT for offline)")?,
        ),
    };
    let agent = Agent::builder("local_coding_agent")
        .shared_provider(provider)
        .model("claude-sonnet-4-5")
        .system_prompt(format!(
            "You are a coding agent with access to the local filesystem. \
             You can create files, edit code, run shell commands, and search the codebase. \
             Your workspace is at {}. \
             Use the tools to complete the task, then summarize what you did and show the output. \
             Always verify your work by running the code after writing it. \
             In your final response, include the actual output from running the code.",
            workspace.display()
        ))
        .tools(tools)
        .stop_when(StopCondition::max_steps(30))
        .build();

    // The worker: a durable runtime on a store in ./.keel.
    let keel = Keel::new(SledStore::open(".keel")?);
    keel.register(agent.clone());
    eprintln!("Starting local sandbox worker...");
    eprintln!("  Agent: {}", agent.id());
    eprintln!("  Tools: [{}]", agent.tools().names().join(", "));
    eprintln!("  Environment: local (no Docker)");
    eprintln!("  Exec security: approval-always (default for local)");

    // A run a crash interrupted continues where it stopped; otherwise start one.
    let report = keel.recover().await?;
    let run = if let Some(run) = report.resumed.first().or(report.waiting.first()) {
        eprintln!("  Continuing run {run}");
        keel.handle(*run)
    } else {
        let input = std::env::args().nth(1).unwrap_or_else(|| {
            "Create hello.js that prints 'Hello, world!' and run it.".to_owned()
        });
        keel.invoke(&agent, input).await?
    };

    // The loop: stream the run's events; approve each exec/write/edit when it
    // suspends. History comes first: approvals answered before are flagged.
    let mut events = run.events();
    while let Some(event) = events.next().await {
        match event? {
            RunEvent::TextDelta { text, .. } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            RunEvent::ApprovalRequested {
                step,
                call,
                form,
                answered: false,
                ..
            } => {
                let pending = PendingStep {
                    step: step.clone(),
                    call,
                    tool: form.tool.clone(),
                    form: form.into(),
                };
                let approved = ask(&pending)?;
                run.resume(
                    &step,
                    if approved {
                        Decision::approve()
                    } else {
                        Decision::deny()
                    },
                )
                .await?;
                println!(
                    "  -> {}. Resuming...",
                    if approved { "Approved" } else { "Denied" }
                );
            }
            event if event.is_terminal() => break,
            _ => {}
        }
    }
    match run.result().await? {
        RunOutcome::Completed { .. } => eprintln!("\nDone: run {}", run.id()),
        other => eprintln!("\nRun {} ended: {other:?}", run.id()),
    }
    Ok(())
}

/// Shows what the agent wants to do and asks `Approve? (y/n)`.
fn ask(step: &PendingStep) -> anyhow::Result<bool> {
    let rule = "=".repeat(60);
    println!("\n{rule}\n {}\n{rule}", step.form.title);
    match &step.form.context {
        FormContext::Command { command, cwd, .. } => {
            println!(" The agent wants to run a command on your machine:");
            println!("   Command: {command}\n   Directory: {cwd}");
        }
        FormContext::Write { path, content, .. } => {
            println!(" The agent wants to use the \"{}\" tool:", step.tool);
            println!("   Path: {path}\n   Content:\n{content}");
        }
        FormContext::Edit { path, diff } => {
            println!(" The agent wants to use the \"{}\" tool:", step.tool);
            println!("   Path: {path}\n{diff}");
        }
        other => println!(" {other:?}"),
    }
    print!(" Approve this operation? (y/n): ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}
