//! The TCP listener: each accepted connection's peer process is looked up once and
//! checked against the [`PeerCheck`] the server was given.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

/// Whether the process with this pid is a command Keel runs (or descends from one):
/// its connections are refused. The CLI supplies it.
pub type PeerCheck = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// The other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// The pid of the refused process, when the peer is a command Keel runs.
    pub refused: Option<u32>,
}

/// Accepts connections and tags each with its [`Peer`].
pub struct PeerListener {
    inner: TcpListener,
    check: Option<PeerCheck>,
}

impl std::fmt::Debug for PeerListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerListener")
            .field("inner", &self.inner)
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl PeerListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, check: Option<PeerCheck>) -> Self {
        Self { inner, check }
    }
}

impl Listener for PeerListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TcpStream, Peer) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait and keep serving.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let refused = match (&self.check, stream.local_addr()) {
                (Some(check), Ok(local)) => {
                    let check = check.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::peer::pid_of(addr, local)
                            .ok()
                            .flatten()
                            .filter(|pid| check(*pid))
                    })
                    .await
                    .unwrap_or(None)
                }
                _ => None,
            };
            return (stream, Peer { addr, refused });
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer {
            addr: self.inner.local_addr()?,
            refused: None,
        })
    }
}

impl Connected<IncomingStream<'_, PeerListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PeerListener>) -> Self {
        stream.remote_addr().clone()
    }
}
