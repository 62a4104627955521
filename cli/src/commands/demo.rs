//! `keel demo`: a local coding agent whose steps wait for approval, end to end with
//! no API key and no network. A
//! recorded coding session (write a small program, run it, report its output) plays
//! through the real tools, the real approvals and the real store; then the run's
//! timeline is shown and the run is replayed from its log.

use anyhow::{Context, Result};
use keel_engine::{Event, check_recorded_events};
use keel_storage::Seq;

use super::run::drive::{Session, drive};
use super::run::load;
use crate::api::SubmitRun;
use crate::args::{DemoArgs, DriveArgs};
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::builtin_coding_agent;
use crate::ui::timeline::{self, Outputs};

const PROMPT: &str = "Write a small shell script that greets and does some arithmetic, run it, and show me its output.";

/// Runs the demo.
pub async fn demo(ctx: &Ctx, args: DemoArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let dir = cwd.join(&args.dir);
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace)
        .with_context(|| format!("creating the demo workspace {}", workspace.display()))?;
    let script = dir.join("demo-session.json");
    std::fs::write(&script, keel_providers::scripted::DEMO_CODING_SESSION)
        .with_context(|| format!("writing {}", script.display()))?;
    let mut spec = builtin_coding_agent(&workspace);
    spec.provider = "scripted".to_owned();
    // The recorded session is Claude's; naming the model prices it and labels it.
    spec.model = Some("claude-sonnet-4-5".to_owned());
    spec.script = Some(script.clone());
    let approve_all = args.approve_all || !crate::ui::interactive();

    eprintln!(
        "Keel demo: a local coding agent whose commands and file changes wait for your approval, offline."
    );
    eprintln!(
        "  Agent:       {} (model claude-sonnet-4-5, played from {})",
        spec.id,
        script.display()
    );
    eprintln!("  Tools:       exec, read, write, edit, glob, grep");
    eprintln!("  Workspace:   {}", workspace.display());
    eprintln!("  Store:       {}", ctx.store.display());
    eprintln!(
        "  Exec security: approval-always{}",
        if approve_all {
            " (answered by --approve-all)"
        } else {
            " (you approve each step)"
        }
    );
    eprintln!("\nPrompt: {PROMPT}\n");

    let env = crate::config::provider_env();
    spec.build(&env)?;
    let mut backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let run = backend
            .submit(SubmitRun {
                agent: spec.clone(),
                input: PROMPT.to_owned(),
                env: env.clone(),
            })
            .await?;
        let session = Session {
            dir: ctx.store.clone(),
            spec: None,
            isolation: spec.tools.isolation.clone(),
            env,
            drive: DriveArgs {
                approve_all,
                json: false,
            },
        };
        let code = drive(&mut backend, run, Seq::ZERO, &session).await?;
        if code != 0 {
            return Ok(code);
        }

        eprintln!("\n--- The run's timeline (keel show {run}) ---\n");
        let (events, _) = load(&backend, run).await?;
        let mut outputs = Outputs::new();
        for (seq, stamped) in &events {
            if let Event::ToolFinished { output, .. } = &stamped.event {
                outputs.insert(*seq, backend.text(output).await?);
            }
        }
        print!("{}", timeline::render(run, &events, &outputs));

        eprintln!("\n--- Replaying it from the log (keel replay {run}) ---\n");
        // Against the definition the run recorded: nothing outside the store.
        let report = check_recorded_events(run, &events)?;
        match report.verdict {
            Ok(()) => println!(
                "deterministic: {} events and {} LLM responses replayed from the log; no LLM or tool was called.",
                report.events, report.turns
            ),
            Err(nd) => {
                println!("{}", crate::ui::safe(&nd.to_string()));
                return Ok(4);
            }
        }
        let store = ctx.store.display();
        eprintln!(
            "\nThe run is in {store}; it recorded its definition, so every command below works\n\
             from any directory, offline, with no flags. Next, try:\n  \
             keel --store {store} runs\n  \
             keel --store {store} show last\n  \
             keel --store {store} replay {run}\n  \
             keel --store {store} fork {run} --at 7     # time travel: from before the command ran\n  \
             keel --store {store} resume <fork id>      # and go live from there"
        );
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
