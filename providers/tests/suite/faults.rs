//! Faults real APIs produce, each checked by the requests the server saw and the
//! outcome the caller got.

use std::time::{Duration, Instant};

use keel_providers::{Anthropic, Error, LlmProvider, Message, Request, RetryPolicy};

use super::server::{End, Framing, Reply, Server};
use super::{Deltas, anthropic, fast_retry, fixture, openai};

fn request() -> Request {
    Request::new("claude-sonnet-4-5", vec![Message::user("weather?")])
}

fn good() -> Reply {
    Reply::sse(fixture("anthropic/tool_use_stream.sse"))
}

const GOOD_TEXT: &str = "Okay, let's check the weather for San Francisco, CA:";

fn error_body(kind: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// A policy whose backoff would take minutes: only `retry-after` can make it fast.
fn patient_backoff(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        max_retry_after: Duration::from_secs(5),
    }
}

fn with_policy(server: &Server, policy: RetryPolicy) -> Anthropic {
    Anthropic::builder()
        .api_key("k")
        .base_url(server.url())
        .retry(policy)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_retry_after_asks() {
    let server = Server::start(vec![
        Reply::json(
            429,
            error_body(
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
            ),
        )
        .header("retry-after", "0"),
        good(),
    ])
    .await;
    let deltas = Deltas::default();
    let response = with_policy(&server, patient_backoff(3))
        .complete(&request(), &deltas.sink())
        .await
        .unwrap();
    assert_eq!(response.text(), GOOD_TEXT);
    assert_eq!(server.count(), 2);
    assert_eq!(
        deltas.retries(),
        [(2, 0)],
        "retry-after: 0 replaces the backoff"
    );

    let server = Server::start(vec![
        Reply::json(429, error_body("rate_limit_error", "slow down"))
            .header("retry-after-ms", "150"),
        good(),
    ])
    .await;
    let deltas = Deltas::default();
    let started = Instant::now();
    with_policy(&server, patient_backoff(3))
        .complete(&request(), &deltas.sink())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(deltas.retries(), [(2, 150)]);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_allows_fails_at_once() {
    let server = Server::start(vec![
        Reply::json(429, error_body("rate_limit_error", "come back in an hour"))
            .header("retry-after", "3600"),
        good(),
    ])
    .await;
    let error = anthropic(&server, 3)
        .complete(&request(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    match error {
        Error::Api {
            status,
            kind,
            message,
            ..
        } => {
            assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
            assert_eq!(message, "come back in an hour");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn overloaded_529_and_5xx_are_retried_then_succeed() {
    for (status, kind) in [
        (529, "overloaded_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
    ] {
        let server = Server::start(vec![
            Reply::json(status, error_body(kind, "try again")),
            good(),
        ])
        .await;
        let deltas = Deltas::default();
        let response = anthropic(&server, 2)
            .complete(&request(), &deltas.sink())
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(response.text(), GOOD_TEXT, "{status}");
        assert_eq!(server.count(), 2, "{status}");
        assert_eq!(deltas.retries().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn retries_end_when_the_budget_is_spent() {
    let plan = (0..5)
        .map(|_| Reply::json(529, error_body("overloaded_error", "Overloaded")))
        .collect();
    let server = Server::start(plan).await;
    let error = anthropic(&server, 2)
        .complete(&request(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 3, "one attempt and two retries");
    match &error {
        Error::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, Error::Api { status: 529, .. }), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_stream_cut_midway_is_retried_as_a_whole() {
    let body = fixture("anthropic/tool_use_stream.sse");
    // Inside the text deltas, so some text was already streamed to the caller.
    let cut = String::from_utf8_lossy(&body).find("\" San\"").unwrap();
    for framing in [Framing::Chunked, Framing::Close] {
        let server = Server::start(vec![
            Reply::sse(body.clone())
                .framing(framing)
                .truncated(cut, End::Cut),
            good(),
        ])
        .await;
        let deltas = Deltas::default();
        let response = anthropic(&server, 2)
            .complete(&request(), &deltas.sink())
            .await
            .unwrap_or_else(|e| panic!("{framing:?}: {e}"));
        assert_eq!(server.count(), 2, "{framing:?}");
        assert_eq!(response.text(), GOOD_TEXT);
        assert_eq!(response.usage.output_tokens, 89);
        let all = deltas.all();
        let retry_at = all
            .iter()
            .position(|d| matches!(d, keel_providers::Delta::Retry { .. }))
            .expect("the caller is told a retry started");
        assert!(retry_at > 0, "text was streamed before the cut");
        assert_eq!(deltas.final_text(), GOOD_TEXT);
    }
}

#[tokio::test]
async fn an_error_event_after_200_is_retried_when_transient() {
    let server = Server::start(vec![
        Reply::sse(fixture("anthropic/error_midstream.sse")),
        good(),
    ])
    .await;
    let response = anthropic(&server, 2)
        .complete(&request(), &|_| {})
        .await
        .unwrap();
    assert_eq!(server.count(), 2);
    assert_eq!(response.text(), GOOD_TEXT);

    let fatal = String::from_utf8(fixture("anthropic/error_midstream.sse"))
        .unwrap()
        .replace("overloaded_error", "invalid_request_error")
        .replace("Overloaded", "prompt is too long");
    let server = Server::start(vec![Reply::sse(fatal), good()]).await;
    let error = anthropic(&server, 2)
        .complete(&request(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(error.to_string().contains("prompt is too long"), "{error}");
}

#[tokio::test]
async fn a_silent_server_hits_the_idle_timeout() {
    let body = fixture("anthropic/tool_use_stream.sse");
    let server = Server::start(vec![
        Reply::sse(body.clone()).truncated(400, End::Stall),
        Reply::silent(),
    ])
    .await;
    let provider = Anthropic::builder()
        .api_key("k")
        .base_url(server.url())
        .retry(fast_retry(1))
        .idle_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let error = provider.complete(&request(), &|_| {}).await.unwrap_err();
    assert_eq!(
        server.count(),
        2,
        "a stalled stream, then a server that never answers"
    );
    match error {
        Error::RetriesExhausted { attempts: 2, last } => {
            assert!(
                matches!(*last, Error::Timeout { seconds, .. } if seconds == 0.15),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn slow_but_steady_chunks_do_not_time_out() {
    // The idle timeout bounds each silence, not the whole stream: 12 pieces 100 ms
    // apart take longer than the 1 s limit in all.
    let body = fixture("anthropic/tool_use_stream.sse");
    let cuts: Vec<usize> = (1..12).map(|i| i * body.len() / 12).collect();
    let server = Server::start(vec![
        Reply::sse(body).split_at(&cuts, Duration::from_millis(100)),
    ])
    .await;
    let provider = Anthropic::builder()
        .api_key("k")
        .base_url(server.url())
        .retry(RetryPolicy::none())
        .idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = provider.complete(&request(), &|_| {}).await.unwrap();
    assert_eq!(response.text(), GOOD_TEXT);
    assert!(started.elapsed() > Duration::from_secs(1));
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_providers_message() {
    for (status, kind, message) in [
        (401, "authentication_error", "invalid x-api-key"),
        (400, "invalid_request_error", "max_tokens: Field required"),
        (
            403,
            "permission_error",
            "Your API key does not have permission",
        ),
        (
            404,
            "not_found_error",
            "The requested resource could not be found.",
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
    ] {
        let server =
            Server::start(vec![Reply::json(status, error_body(kind, message)), good()]).await;
        let error = anthropic(&server, 3)
            .complete(&request(), &|_| {})
            .await
            .unwrap_err();
        assert_eq!(server.count(), 1, "{status}");
        assert!(!error.is_retryable());
        let shown = error.to_string();
        assert!(
            shown.contains(message) && shown.contains(kind) && shown.contains(&status.to_string()),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn the_server_can_veto_a_retry() {
    let server = Server::start(vec![
        Reply::json(503, error_body("api_error", "down for maintenance"))
            .header("x-should-retry", "false"),
        good(),
    ])
    .await;
    let error = anthropic(&server, 3)
        .complete(&request(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn connection_resets_and_refusals_are_retried() {
    let server = Server::start(vec![Reply::reset(), good()]).await;
    let response = anthropic(&server, 2)
        .complete(&request(), &|_| {})
        .await
        .unwrap();
    assert_eq!(server.count(), 2);
    assert_eq!(response.text(), GOOD_TEXT);

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = Anthropic::builder()
        .api_key("k")
        .base_url(format!("http://127.0.0.1:{port}"))
        .retry(fast_retry(1))
        .build()
        .unwrap();
    match provider.complete(&request(), &|_| {}).await.unwrap_err() {
        Error::RetriesExhausted { attempts: 2, last } => {
            assert!(matches!(*last, Error::Transport { .. }), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn openai_insufficient_quota_fails_at_once_and_cuts_are_retried() {
    let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let server = Server::start(vec![
        Reply::json(429, quota),
        Reply::sse(fixture("openai/text_stream.sse")),
    ])
    .await;
    let error = openai(&server, 3)
        .complete(&Request::new("gpt-4o", vec![Message::user("hi")]), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(
        error.to_string().contains("exceeded your current quota"),
        "{error}"
    );

    let body = fixture("openai/text_stream.sse");
    let before_done = String::from_utf8_lossy(&body).find("data: [DONE]").unwrap();
    let server = Server::start(vec![
        Reply::sse(body.clone())
            .framing(Framing::Close)
            .truncated(before_done, End::Cut),
        Reply::json(
            500,
            r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
        ),
        Reply::sse(body),
    ])
    .await;
    let deltas = Deltas::default();
    let response = openai(&server, 3)
        .complete(
            &Request::new("gpt-4o", vec![Message::user("hi")]),
            &deltas.sink(),
        )
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
    assert_eq!(response.text(), "Hello");
    assert_eq!(deltas.retries().len(), 2);
    assert_eq!(deltas.final_text(), "Hello");
}

#[tokio::test]
async fn an_html_page_with_status_200_is_not_retried() {
    let page = Reply {
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        ..Reply::json(200, "<html><body>Please log in to the proxy</body></html>")
    };
    let server = Server::start(vec![page, good()]).await;
    let error = anthropic(&server, 3)
        .complete(&request(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(error.to_string().contains("Please log in"), "{error}");
}
