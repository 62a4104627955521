//! Who may talk to the server: the token (bearer header, or the cookie it is
//! exchanged for), the CSRF header and `Origin` on state-changing browser requests,
//! the `Host` (DNS rebinding), and the TCP peer (commands Keel runs are refused).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::listener::Peer;

/// The header a browser's state-changing request must carry (a cross-site page
/// cannot add it without a CORS preflight, which this server never grants).
pub const CSRF_HEADER: &str = "x-keel-csrf";

/// A fresh secret: 32 random bytes from the kernel, as 64 hex digits.
pub fn fresh_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// What the server checks on every request.
#[derive(Clone, Debug)]
pub struct Guard {
    token: Arc<str>,
    cookie: String,
    hosts: Vec<String>,
    /// Bound to an unspecified address (`0.0.0.0`): any `Host` with this port.
    any_host_port: Option<u16>,
    origins: Vec<String>,
}

impl Guard {
    /// The checks for a server bound at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        let port = addr.port();
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{port}"));
        }
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Self {
            token: Arc::from(token),
            cookie: format!("keel_ui_{port}"),
            any_host_port: addr.ip().is_unspecified().then_some(port),
            hosts,
            origins,
        }
    }

    /// The cookie's name (one per port, so two servers do not overwrite each other's).
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.hosts.contains(&host)
            || self.any_host_port.is_some_and(|port| {
                host.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>() == Ok(port))
            })
    }

    fn origin_ok(&self, origin: &str, headers: &HeaderMap) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        // Bound to every address: the page's origin is whatever host it was
        // reached by, and must be the request's own `Host`.
        self.any_host_port.is_some()
            && headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|h| origin == format!("http://{}", h.to_ascii_lowercase()))
    }

    fn is_token(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    fn cookie_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value)
    }

    /// Decides on one request; `Ok(Some(response))` answers it here (the token
    /// exchange), `Ok(None)` lets it through.
    fn check(&self, request: &Request) -> Result<Option<Response>, Error> {
        let headers = request.headers();
        if !self.host_ok(headers) {
            return Err(Error::Forbidden(format!(
                "this server answers only to {} (Host was {:?}); a page on another name reached it (DNS rebinding?)",
                self.hosts.join(" or "),
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("absent"),
            )));
        }
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let Some(origin) = origin
            && !self.origin_ok(origin, headers)
        {
            return Err(Error::Forbidden(format!(
                "requests from {origin} are refused: only this dashboard's own pages may call it"
            )));
        }
        if request.uri().path() == "/"
            && let Some(given) = query_token(request.uri().query())
        {
            if !self.is_token(&given) {
                return Err(Error::Unauthorized(
                    "this token is not the one `keel ui` printed (it changes at every start; see <store>/ui-token)".to_owned(),
                ));
            }
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/",
                self.cookie, self.token
            );
            let response = Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, "/")
                .header(header::SET_COOKIE, cookie)
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .map_err(Error::internal)?;
            return Ok(Some(response));
        }
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let given = auth
                .to_str()
                .ok()
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or_default();
            return if self.is_token(given) {
                Ok(None)
            } else {
                Err(Error::Unauthorized(
                    "wrong token: give `Authorization: Bearer <token>` with the token `keel ui` printed (also in <store>/ui-token)".to_owned(),
                ))
            };
        }
        match self.cookie_token(headers) {
            Some(given) if self.is_token(given) => {
                let safe = matches!(*request.method(), Method::GET | Method::HEAD);
                if !safe {
                    if headers.get(CSRF_HEADER).is_none() {
                        return Err(Error::Forbidden(format!(
                            "a browser request that changes something needs the `{CSRF_HEADER}` header"
                        )));
                    }
                    if origin.is_none() {
                        return Err(Error::Forbidden(
                            "a browser request that changes something needs this dashboard's `Origin`".to_owned(),
                        ));
                    }
                }
                Ok(None)
            }
            Some(_) => Err(Error::Unauthorized(
                "the session's token is stale (keel ui was restarted): open the new URL it printed".to_owned(),
            )),
            None => Err(Error::Unauthorized(
                "no token: open the URL `keel ui` printed (http://…/?token=…), or send `Authorization: Bearer <token>` (the token is in <store>/ui-token)".to_owned(),
            )),
        }
    }
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuses sandboxed peers, then applies the [`Guard`].
pub async fn middleware(
    State(guard): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(pid) = peer.refused {
        tracing::warn!("refused a request from process {pid}, a command Keel runs");
        return Error::Forbidden(format!(
            "the connecting process ({pid}) is a command Keel runs; commands may not use the dashboard"
        ))
        .into_response();
    }
    match guard.check(&request) {
        Ok(Some(response)) => response,
        Ok(None) => {
            let mut response = next.run(request).await;
            secure_headers(response.headers_mut());
            response
        }
        Err(e) => {
            let mut response = e.into_response();
            secure_headers(response.headers_mut());
            response
        }
    }
}

/// The content security policy: only this server's own scripts, styles and
/// connections; no inline script, no `eval`, no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
