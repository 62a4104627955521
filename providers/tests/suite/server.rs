//! A small HTTP/1.1 server on loopback TCP that answers each request with the next
//! planned [`Reply`], so tests control status, headers, chunking, delays, cuts and
//! stalls exactly, and records every request it saw.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// How the body is framed, which decides what a cut looks like to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `transfer-encoding: chunked`: a cut is a framing error.
    Chunked,
    /// No length, `connection: close`: a cut is a clean end of file.
    Close,
}

/// What happens after the planned pieces are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ends properly.
    Finish,
    /// The connection closes in the middle of the body.
    Cut,
    /// Nothing more is sent until the client gives up and closes the connection.
    Stall,
}

/// One planned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub pieces: Vec<Vec<u8>>,
    /// Slept before each piece.
    pub delay: Duration,
    pub framing: Framing,
    pub end: End,
    /// Send nothing at all, not even the status line, until the client closes.
    pub silent: bool,
    /// Close the connection as soon as the request is read, without a response.
    pub reset: bool,
}

impl Reply {
    /// A `text/event-stream` body in one piece.
    pub fn sse(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            pieces: vec![body.into()],
            delay: Duration::ZERO,
            framing: Framing::Chunked,
            end: End::Finish,
            silent: false,
            reset: false,
        }
    }

    /// An `application/json` answer with this status.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            ..Self::sse(body)
        }
    }

    /// Splits the body at these byte positions (sorted, clamped), each piece sent
    /// after `delay`.
    pub fn split_at(mut self, cuts: &[usize], delay: Duration) -> Self {
        let body: Vec<u8> = self.pieces.concat();
        let mut pieces = Vec::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, body.len());
            pieces.push(body[start..cut].to_vec());
            start = cut;
        }
        pieces.push(body[start..].to_vec());
        self.pieces = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        self.delay = delay;
        self
    }

    /// Sends only the first `len` bytes of the body, then ends as `end` says.
    pub fn truncated(mut self, len: usize, end: End) -> Self {
        let body: Vec<u8> = self.pieces.concat();
        self.pieces = vec![body[..len.min(body.len())].to_vec()];
        self.end = end;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Never answers (the client's head timeout must fire).
    pub fn silent() -> Self {
        Self {
            silent: true,
            ..Self::sse(Vec::new())
        }
    }

    /// Closes the connection without answering.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::sse(Vec::new())
        }
    }
}

/// The running server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts a server answering requests with `plan`, in order. A request beyond
    /// the plan gets a 418 so a test sees it plainly.
    pub async fn start(plan: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let plan = plan.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, plan, recorded).await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn serve(
    mut socket: TcpStream,
    plan: Arc<Mutex<VecDeque<Reply>>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let Some(request) = read_request(&mut socket).await? else {
        return Ok(());
    };
    recorded.lock().unwrap().push(request);
    let reply = plan.lock().unwrap().pop_front();
    let Some(reply) = reply else {
        let body = b"no reply planned for this request";
        let head = format!(
            "HTTP/1.1 418 I'm a teapot\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(body).await?;
        return Ok(());
    };
    if reply.reset {
        return Ok(());
    }
    if reply.silent {
        return wait_for_close(&mut socket).await;
    }
    let mut head = format!("HTTP/1.1 {} Planned\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.framing == Framing::Chunked {
        head.push_str("transfer-encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    for piece in &reply.pieces {
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        match reply.framing {
            Framing::Chunked => {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
                socket.write_all(&framed).await?;
            }
            Framing::Close => socket.write_all(piece).await?,
        }
        socket.flush().await?;
    }
    match reply.end {
        End::Finish => {
            if reply.framing == Framing::Chunked {
                socket.write_all(b"0\r\n\r\n").await?;
            }
            socket.flush().await?;
            socket.shutdown().await?;
            Ok(())
        }
        End::Cut => Ok(()),
        End::Stall => wait_for_close(&mut socket).await,
    }
}

/// Reads until the client closes its side: the client gave up.
async fn wait_for_close(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    while socket.read(&mut buf).await? > 0 {}
    Ok(())
}

async fn read_request(socket: &mut TcpStream) -> std::io::Result<Option<Recorded>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[..n]);
    }
    Ok(Some(Recorded {
        method,
        path,
        headers,
        body,
    }))
}
