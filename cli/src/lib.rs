//! The `keel` command line: run agents with approvals; inspect, replay, fork and
//! resume their runs.
//!
//! Every command works on a store directory (`--store`, `KEEL_STORE`, default
//! `./.keel`). The first process to open a store owns it and serves a control API
//! on `<store>/keel.sock`; every other `keel` process on that store works through
//! the owner (see `owner` and `api`).

pub mod api;
pub mod args;
pub mod backend;
pub mod client;
pub mod commands;
pub mod config;
pub mod guard;
pub mod owner;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::commands::{Ctx, run, runs};

/// A usage or configuration error: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct UsageError(anyhow::Error);

/// Marks an error as the person's to fix in how they called keel (exit status 2).
pub fn usage(e: anyhow::Error) -> anyhow::Error {
    if e.is::<UsageError>() {
        e
    } else {
        UsageError(e).into()
    }
}

/// Runs the `keel` command line with this process's arguments; returns the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if e.is::<UsageError>() { 2 } else { 1 };
            // Errors can quote a model, a tool or a server: shown made safe.
            eprintln!("keel: {}", ui::safe(&format!("{e:#}")));
            ExitCode::from(code)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let store = cli.store.clone();
    let ctx = Ctx {
        store: store.clone().unwrap_or_else(|| PathBuf::from(".keel")),
        config: cli.config,
    };
    match cli.command {
        Command::Run(args) => run::start::start(&ctx, args).await,
        Command::Runs(args) => runs::list::list(&ctx, args).await,
        Command::Show(args) => run::show::show(&ctx, args).await,
        Command::Log(args) => run::log::log(&ctx, args).await,
        Command::Replay(args) => run::replay::replay(&ctx, args).await,
        Command::Fork(args) => run::fork::fork(&ctx, args).await,
        Command::Resume(args) => run::resume::resume(&ctx, args).await,
        Command::Approve(args) => run::approve::approve(&ctx, args).await,
        Command::Cancel(args) => run::cancel::cancel(&ctx, args).await,
        Command::Export(args) => run::export::export(&ctx, args).await,
        Command::Demo(args) => {
            let ctx = Ctx {
                store: store.unwrap_or_else(|| args.dir.join(".keel")),
                ..ctx
            };
            commands::demo::demo(&ctx, args).await
        }
        Command::Serve => commands::serve::serve(&ctx).await,
        Command::Ui(args) => commands::ui::ui(&ctx, args).await,
    }
}
