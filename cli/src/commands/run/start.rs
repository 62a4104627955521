//! `keel run <agent> [PROMPT]`.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use keel_storage::Seq;

use super::drive::{Session, drive};
use crate::api::SubmitRun;
use crate::args::RunArgs;
use crate::backend::Backend;
use crate::commands::Ctx;
use crate::config::provider_env;

/// Starts a run and drives it at this terminal.
pub async fn start(ctx: &Ctx, args: RunArgs) -> Result<u8> {
    let spec = ctx
        .agents()?
        .get(&args.agent)
        .map_err(crate::usage)?
        .with_overrides(&args.provider)
        .map_err(crate::usage)?;
    let input = match args.prompt {
        Some(p) => p,
        None if !std::io::stdin().is_terminal() => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the prompt from standard input")?;
            text
        }
        None => {
            return Err(crate::usage(anyhow::anyhow!(
                "give the agent a prompt: keel run {} \"what to do\"",
                args.agent
            )));
        }
    };
    if input.trim().is_empty() {
        return Err(crate::usage(anyhow::anyhow!("the prompt is empty")));
    }
    std::fs::create_dir_all(spec.workspace())
        .with_context(|| format!("creating the workspace {}", spec.workspace().display()))?;
    let env = provider_env();
    // Fail fast, here, on what the person must fix (a missing API key, a bad script).
    spec.build(&env).map_err(crate::usage)?;
    let mut backend = Backend::connect(&ctx.store).await?;
    let run = backend
        .submit(SubmitRun {
            agent: spec.clone(),
            input,
            env: env.clone(),
        })
        .await?;
    let session = Session {
        dir: ctx.store.clone(),
        spec: None,
        isolation: spec.tools.isolation.clone(),
        env,
        drive: args.drive,
    };
    let code = drive(&mut backend, run, Seq::ZERO, &session).await;
    if matches!(code, Ok(130)) {
        backend.stop().await;
    } else {
        backend.close().await;
    }
    code
}
