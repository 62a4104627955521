//! `keel ui [--addr HOST:PORT] [--allow-remote]`: serve the dashboard and its HTTP
//! API (crate `keel-dashboard`) on the store. Like `keel serve` it owns the store and
//! resumes interrupted runs; when another process owns the store, it works through
//! that owner's socket.

mod remote;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keel_dashboard::{Options, PeerCheck, Server, peer};

use crate::args::UiArgs;
use crate::backend::Backend;
use crate::commands::{Ctx, who};
use crate::config::provider_env;

/// The file the token is written to, in the store directory (mode 0600).
pub const TOKEN_FILE: &str = "ui-token";

/// Serves until Ctrl-C.
pub async fn ui(ctx: &Ctx, args: UiArgs) -> Result<u8> {
    let addr: SocketAddr = args
        .addr
        .parse()
        .with_context(|| {
            format!(
                "`--addr {}` is not HOST:PORT (e.g. 127.0.0.1:7878)",
                args.addr
            )
        })
        .map_err(crate::usage)?;
    if !addr.ip().is_loopback() {
        if !args.allow_remote {
            return Err(crate::usage(anyhow::anyhow!(
                "`--addr {addr}` is reachable from other machines; the dashboard can approve commands on this one. Pass --allow-remote to do it anyway (the token still guards it, over plain HTTP)"
            )));
        }
        eprintln!(
            "keel: WARNING: serving the dashboard on {addr}, reachable from the network over plain HTTP; anyone who sees the token can approve commands here"
        );
    }
    let agents = ctx.agents()?;
    let env = provider_env();
    let backend = Backend::connect(&ctx.store).await?;
    let me = std::process::id();
    let options = |owner: u32| {
        // Commands Keel runs descend from a supervisor (any Keel process's), live in
        // a nested PID namespace, or descend from the process executing the run.
        let check: PeerCheck = Arc::new(move |pid| {
            pid != me
                && (peer::descends_from(pid, owner)
                    || peer::descends_from(pid, me)
                    || i32::try_from(pid)
                        .map_or(true, keel_tools::sandbox::peer::from_sandboxed_command))
        });
        Options {
            addr,
            token: None,
            peer_check: Some(check),
            who: format!("{} (dashboard)", who()),
        }
    };
    let server = match &backend {
        Backend::Local(local) => {
            let built = super::serve::take_over(local, &agents, &env, "owning", &ctx.store).await?;
            let source = keel_dashboard::Local::new(local.owner().keel().clone(), built);
            Server::start(source, options(me)).await
        }
        Backend::Remote(r) => {
            eprintln!(
                "keel: the store {} is owned by process {}; working through it",
                ctx.store.display(),
                r.health.pid
            );
            let source = remote::Remote::new(r.clone(), agents.all().cloned().collect(), env);
            Server::start(source, options(r.health.pid)).await
        }
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            backend.stop().await;
            bail!("cannot serve the dashboard on {addr}: {e}");
        }
    };
    let token_file = ctx.store.join(TOKEN_FILE);
    if let Err(e) = write_token(&token_file, server.token()) {
        eprintln!("keel: cannot write {}: {e}", token_file.display());
    }
    println!("{}", server.url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "keel: dashboard at http://{}/ (token in {}); Ctrl-C to stop",
        server.addr(),
        token_file.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    let _ = std::fs::remove_file(&token_file);
    backend.stop().await;
    Ok(130)
}

/// Writes the token readable by this user only (a file left by an earlier run is
/// replaced, not reused: its mode could be wider).
fn write_token(path: &Path, token: &str) -> std::io::Result<PathBuf> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(path.to_path_buf())
}
