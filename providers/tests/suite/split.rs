//! Any split of a stream, delivered over real TCP with delays, parses to the same
//! response as the unsplit stream.

use std::time::Duration;

use keel_providers::{LlmProvider, Message, Request, Response};
use proptest::prelude::*;

use super::server::{Reply, Server};
use super::{Deltas, anthropic, fixture, openai};

/// The bodies to split: which provider speaks them, and the body.
fn bodies() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, fixture("anthropic/tool_use_stream.sse")),
        (true, fixture("anthropic/text_stream.sse")),
        (
            true,
            super::anthropic::THINKING_TOOL_STREAM.as_bytes().to_vec(),
        ),
        (false, fixture("openai/text_stream.sse")),
        (false, super::openai::TOOL_STREAM.as_bytes().to_vec()),
    ]
}

async fn fetch(is_anthropic: bool, reply: Reply) -> (Response, String) {
    let server = Server::start(vec![reply]).await;
    let request = Request::new("m", vec![Message::user("hi")]);
    let deltas = Deltas::default();
    let response = if is_anthropic {
        anthropic(&server, 0)
            .complete(&request, &deltas.sink())
            .await
    } else {
        openai(&server, 0).complete(&request, &deltas.sink()).await
    };
    assert_eq!(server.count(), 1);
    (
        response.expect("the split stream parses"),
        deltas.final_text(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn unsplit_bodies_parse() {
    let rt = runtime();
    for (is_anthropic, body) in bodies() {
        let (response, text) = rt.block_on(fetch(is_anthropic, Reply::sse(body)));
        assert_eq!(text, response.text());
        assert!(!response.content.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_split_with_delays_gives_the_same_response(
        which in 0usize..5,
        mut cuts in proptest::collection::vec(0usize..4000, 0..24),
        delay_us in 0u64..1500,
        crlf in any::<bool>(),
    ) {
        let (is_anthropic, mut body) = bodies().swap_remove(which);
        if crlf {
            body = String::from_utf8(body).unwrap().replace('\n', "\r\n").into_bytes();
        }
        cuts.sort_unstable();
        let cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
        let rt = runtime();
        let (expected, expected_text) = rt.block_on(fetch(is_anthropic, Reply::sse(body.clone())));
        let mut sorted = cuts.clone();
        sorted.sort_unstable();
        let reply = Reply::sse(body).split_at(&sorted, Duration::from_micros(delay_us));
        let (response, text) = rt.block_on(fetch(is_anthropic, reply));
        prop_assert_eq!(response, expected);
        prop_assert_eq!(text, expected_text);
    }
}
