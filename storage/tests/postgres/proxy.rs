//! A TCP proxy on loopback in front of the server's Unix socket, whose connections
//! the test cuts at will: what a network fault or a restarted load balancer does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to `target`.
    pub async fn start(target: PathBuf) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = target.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut server) = UnixStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    let mut live = connections.lock().unwrap();
                    live.retain(|c| !c.is_finished());
                    live.push(forward);
                }
            }
        });
        Proxy {
            addr,
            connections,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops every connection open through the proxy (both sockets close at once).
    /// Returns how many there were.
    pub fn cut(&self) -> usize {
        let mut live = self.connections.lock().unwrap();
        let n = live.iter().filter(|c| !c.is_finished()).count();
        for connection in live.drain(..) {
            connection.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
