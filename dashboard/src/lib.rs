//! Keel's dashboard: an authenticated HTTP API (JSON, and Server-Sent Events for
//! live runs) and the web pages built on it — the runs list with an inbox of runs
//! waiting for a person, and each run's trace, timeline, graph, raw events and
//! approval panel. The pages are embedded in the binary (`assets/`).
//!
//! The dashboard does not own the store: it talks to whoever does through the
//! [`Source`] trait. [`Local`] implements it over a [`keel_engine::Keel`] runtime in
//! this process; the CLI also implements it over another process's control socket.
//!
//! Every request needs the token ([`auth`]): `Authorization: Bearer <token>`, or the
//! cookie a browser gets by opening `/?token=…`. Browser requests that change
//! something also need the `X-Keel-CSRF` header and this server's `Origin`; a foreign
//! `Host` is refused, and so is a connection whose peer is a command Keel runs
//! ([`PeerCheck`]).
//!
//! ```no_run
//! # async fn demo(keel: keel_engine::Keel, agent: keel_engine::Agent) -> std::io::Result<()> {
//! let source = keel_dashboard::Local::new(keel, [agent]);
//! let options = keel_dashboard::Options::new("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()));
//! let server = keel_dashboard::Server::start(source, options).await?;
//! println!("{}", server.url());
//! tokio::signal::ctrl_c().await?;
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod assets;
pub mod auth;
mod error;
mod listener;
mod local;
pub mod paging;
pub mod peer;
mod source;
mod spend;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use api::{CancelRun, StartRun};
pub use error::{Error, Result};
pub use listener::{Peer, PeerCheck};
pub use local::{INDEX_MAX_AGE, Local, delta};
pub use source::{
    Answer, Decided, Delta, Entry, EventsQuery, Link, MAX_PAGE, RunPage, RunQuery, RunRow, RunView,
    Source, Update, Verdict, Waiting,
};
pub use spend::Spend;

/// What every handler shares.
pub(crate) struct App<S> {
    source: Arc<S>,
    who: Arc<str>,
    shutdown: CancellationToken,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            who: self.who.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// How to serve.
#[derive(Clone)]
pub struct Options {
    /// Where to listen (port 0: a free port).
    pub addr: SocketAddr,
    /// The token; a fresh one when `None`.
    pub token: Option<String>,
    /// Refuses connections from commands Keel runs.
    pub peer_check: Option<PeerCheck>,
    /// Who answers approvals, as recorded in the log.
    pub who: String,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("addr", &self.addr)
            .field("peer_check", &self.peer_check.is_some())
            .field("who", &self.who)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Serve at `addr` with a fresh token, no peer check, answers recorded as
    /// `dashboard`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            token: None,
            peer_check: None,
            who: "dashboard".to_owned(),
        }
    }
}

/// The routes, behind the [`auth`] middleware.
fn router<S: Source>(app: App<S>, guard: auth::Guard) -> axum::Router {
    axum::Router::new()
        .route("/", get(assets::list_page))
        .route("/runs/{id}", get(assets::run_page))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/agents", get(api::agents::<S>))
        .route("/api/runs", get(api::list::<S>).post(api::start::<S>))
        .route("/api/live", get(sse::list_events::<S>))
        .route("/api/runs/{id}", get(api::show::<S>))
        .route("/api/runs/{id}/events", get(sse::run_events::<S>))
        .route("/api/runs/{id}/decisions", post(api::decide::<S>))
        .route("/api/runs/{id}/cancel", post(api::cancel::<S>))
        .route("/api/blobs/{hash}", get(api::blob::<S>))
        .fallback(|| async { Error::NotFound("no such page or API".to_owned()) })
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            auth::middleware,
        ))
}

/// A running dashboard.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    token: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds and starts serving `source` in the background.
    pub async fn start<S: Source>(source: S, options: Options) -> std::io::Result<Self> {
        let token = match options.token {
            Some(t) => t,
            None => auth::fresh_token()?,
        };
        let tcp = tokio::net::TcpListener::bind(options.addr).await?;
        let addr = tcp.local_addr()?;
        let shutdown = CancellationToken::new();
        let app = App {
            source: Arc::new(source),
            who: Arc::from(options.who.as_str()),
            shutdown: shutdown.clone(),
        };
        let service = router(app, auth::Guard::new(addr, &token))
            .into_make_service_with_connect_info::<Peer>();
        let listener = listener::PeerListener::new(tcp, options.peer_check);
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, service)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!("the dashboard stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            token,
            shutdown,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The URL to open, with the token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// Stops: live streams end, requests in flight finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
