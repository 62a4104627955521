//! Who may talk to the store's owner: the check on every connection to
//! `<store>/keel.sock`.
//!
//! The socket file is the owner's only (mode 0600 in a 0700 directory), so only its
//! user reaches it; but so do the commands Keel runs for that user, and a command
//! that could submit runs, answer approvals or cancel through the owner would be
//! out of its sandbox in one request. So when a connection is accepted the owner
//! identifies the peer by its kernel credentials and refuses, with a 403 for every
//! request on that connection, any peer that is another user or was started by a
//! command Keel runs (see [`keel_tools::sandbox::peer`]), and says so on its
//! standard error. A `keel` process a command runs is refused the same way.

use axum::Json;
use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use keel_tools::sandbox::peer::{Peer, check_unix_peer};
use tokio::net::UnixListener;

use crate::api::ApiError;

/// The verdict on a connection's peer, reached when it was accepted.
#[derive(Debug, Clone)]
pub struct PeerVerdict(pub Result<Peer, String>);

impl Connected<IncomingStream<'_, UnixListener>> for PeerVerdict {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let verdict = check_unix_peer(stream.io()).map_err(|e| e.to_string());
        if let Err(why) = &verdict {
            eprintln!("keel: refused a connection to the control socket: {why}");
        }
        PeerVerdict(verdict)
    }
}

/// Answers every request of a refused peer with 403, before any handler runs.
pub async fn refuse_untrusted(
    ConnectInfo(verdict): ConnectInfo<PeerVerdict>,
    request: Request,
    next: Next,
) -> Response {
    match verdict.0 {
        Ok(_) => next.run(request).await,
        Err(why) => (
            StatusCode::FORBIDDEN,
            Json(ApiError {
                message: format!(
                    "refused: {why}. The store's owner acts only for its user's own keel processes, never for a command an agent runs"
                ),
                code: None,
                kind: "forbidden".to_owned(),
            }),
        )
            .into_response(),
    }
}
