use proptest::prelude::*;

use super::*;

fn parse_in_pieces(body: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, body.len());
        parser.feed(&body[start..cut], &mut out).unwrap();
        start = cut;
    }
    parser.feed(&body[start..], &mut out).unwrap();
    out
}

fn event(kind: &str, data: &str) -> Event {
    Event {
        event: kind.into(),
        data: data.into(),
        id: String::new(),
    }
}

#[test]
fn parses_named_and_default_events() {
    let body = b"event: ping\ndata: {}\n\ndata: hello\n\n";
    assert_eq!(
        Parser::parse_all(body).unwrap(),
        vec![event("ping", "{}"), event("message", "hello")]
    );
}

#[test]
fn every_line_ending_ends_a_line() {
    for body in [
        &b"data: a\n\ndata: b\n\n"[..],
        b"data: a\r\n\r\ndata: b\r\n\r\n",
        b"data: a\r\rdata: b\r\r",
        b"data: a\r\n\rdata: b\n\r\n",
    ] {
        assert_eq!(
            Parser::parse_all(body).unwrap(),
            vec![event("message", "a"), event("message", "b")],
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_cr_lf_split_across_reads_is_one_line_ending() {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    parser.feed(b"data: a\r", &mut out).unwrap();
    parser.feed(b"\n", &mut out).unwrap();
    assert!(
        out.is_empty(),
        "the \\n after \\r must not count as a blank line"
    );
    parser.feed(b"\r\n", &mut out).unwrap();
    assert_eq!(out, vec![event("message", "a")]);
}

#[test]
fn comments_are_ignored_and_multi_line_data_joins() {
    let body = b": keep-alive\ndata: one\n:comment\ndata:two\ndata\ndata:  three\n\n";
    assert_eq!(
        Parser::parse_all(body).unwrap(),
        vec![event("message", "one\ntwo\n\n three")]
    );
}

#[test]
fn events_without_data_are_not_dispatched_but_empty_data_is() {
    let body = b"event: x\n\ndata\n\nevent: y\ndata:\n\n";
    assert_eq!(
        Parser::parse_all(body).unwrap(),
        vec![event("message", ""), event("y", "")]
    );
}

#[test]
fn id_persists_and_retry_is_read() {
    let body = b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\nretry: x\n";
    let mut parser = Parser::new();
    let mut out = Vec::new();
    parser.feed(body, &mut out).unwrap();
    let ids: Vec<_> = out.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["7", "7", ""]);
    assert_eq!(parser.retry_ms(), Some(1500));
}

#[test]
fn a_leading_bom_is_dropped_even_when_split() {
    let body = b"\xEF\xBB\xBFdata: a\n\n";
    assert_eq!(parse_in_pieces(body, &[1, 2]), vec![event("message", "a")]);
    // Only at the start of the stream.
    let later = b"data: a\n\n\xEF\xBB\xBFdata: b\n\n";
    assert_eq!(Parser::parse_all(later).unwrap().len(), 1);
}

#[test]
fn utf8_split_inside_a_character_decodes_whole() {
    let body = "data: héllo → 世界 🦀\n\n".as_bytes();
    for cut in 0..body.len() {
        assert_eq!(
            parse_in_pieces(body, &[cut]),
            vec![event("message", "héllo → 世界 🦀")],
            "cut at {cut}"
        );
    }
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    let body = b"data: a\xFFb\n\n";
    assert_eq!(Parser::parse_all(body).unwrap()[0].data, "a\u{FFFD}b");
}

#[test]
fn a_cut_stream_leaves_a_partial_event() {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    parser.feed(b"data: a\n\ndata: b\n", &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert!(parser.has_partial_event());
    parser.feed(b"\n", &mut out).unwrap();
    assert!(!parser.has_partial_event());
}

#[test]
fn an_endless_line_hits_the_limit() {
    let mut parser = Parser::with_limit(64);
    let mut out = Vec::new();
    let mut result = Ok(());
    for _ in 0..10 {
        result = parser.feed(&[b'x'; 10], &mut out);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(LimitExceeded { limit: 64 }));
    let mut parser = Parser::with_limit(64);
    let many_lines = b"data: 0123456789\n".repeat(10);
    assert!(parser.feed(&many_lines, &mut out).is_err());
}

#[test]
fn invalid_bytes_count_against_the_limit_as_decoded() {
    // Found by the `sse` fuzz target: 40 invalid bytes decode to 120 bytes of U+FFFD,
    // and fed whole they were handed over as an event of 120 bytes under a limit of 64.
    let mut body = b"data:".to_vec();
    body.extend([0xFF; 40]);
    body.extend(b"\n\n");
    let mut out = Vec::new();
    let result = Parser::with_limit(64).feed(&body, &mut out);
    assert_eq!(result, Err(LimitExceeded { limit: 64 }));
    assert!(out.is_empty());
    // Within the limit once decoded, the replacement characters are kept.
    let mut body = b"data:".to_vec();
    body.extend([0xFF; 20]);
    body.extend(b"\n\n");
    let events = Parser::with_limit(64).feed(&body, &mut out);
    assert!(events.is_ok());
    assert_eq!(out[0].data, "\u{FFFD}".repeat(20));
}

#[test]
fn the_fixtures_parse() {
    let body = include_bytes!("../tests/fixtures/anthropic/tool_use_stream.sse");
    let events = Parser::parse_all(body).unwrap();
    assert_eq!(events.first().unwrap().event, "message_start");
    assert_eq!(events.last().unwrap().event, "message_stop");
    assert_eq!(events.len(), 30);
    let body = include_bytes!("../tests/fixtures/openai/text_stream.sse");
    let events = Parser::parse_all(body).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].data, "[DONE]");
}

/// One event as the generator describes it: comments, an optional type, data lines.
#[derive(Debug, Clone)]
struct Spec {
    comment: Option<String>,
    kind: Option<String>,
    data: Vec<String>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let text = "[a-z0-9 {}\":,é世🦀]{0,12}";
    (
        proptest::option::of("[ a-z]{0,8}"),
        proptest::option::of("[a-z_]{1,10}"),
        proptest::collection::vec(text, 1..4),
    )
        .prop_map(|(comment, kind, data)| Spec {
            comment,
            kind,
            data,
        })
}

fn render(specs: &[Spec], eol: &str) -> Vec<u8> {
    let mut body = String::new();
    for spec in specs {
        if let Some(comment) = &spec.comment {
            body.push_str(&format!(":{comment}{eol}"));
        }
        if let Some(kind) = &spec.kind {
            body.push_str(&format!("event: {kind}{eol}"));
        }
        for line in &spec.data {
            body.push_str(&format!("data: {line}{eol}"));
        }
        body.push_str(eol);
    }
    body.into_bytes()
}

proptest! {
    #[test]
    fn any_split_and_any_line_ending_gives_the_same_events(
        specs in proptest::collection::vec(spec(), 0..8),
        eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        mut cuts in proptest::collection::vec(0usize..400, 0..12),
    ) {
        let body = render(&specs, eol);
        cuts.sort_unstable();
        let expected: Vec<Event> = specs
            .iter()
            .map(|s| event(s.kind.as_deref().unwrap_or("message"), &s.data.join("\n")))
            .collect();
        prop_assert_eq!(parse_in_pieces(&body, &cuts), expected.clone());
        // Byte by byte, the worst case for carried state.
        let every: Vec<usize> = (0..body.len()).collect();
        prop_assert_eq!(parse_in_pieces(&body, &every), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        mut cuts in proptest::collection::vec(0usize..512, 0..8),
    ) {
        cuts.sort_unstable();
        let whole = Parser::parse_all(&body).unwrap();
        prop_assert_eq!(parse_in_pieces(&body, &cuts), whole);
    }
}

#[test]
fn feed_with_borrows_events_and_stops_when_asked() {
    let mut parser = Parser::new();
    let mut seen = Vec::new();
    let flow = parser
        .feed_with(b"event: a\ndata: 1\n\ndata: 2\n\ndata: 3\n\n", |event| {
            seen.push((event.event.to_owned(), event.data.to_owned()));
            if event.data == "2" {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(flow.is_break());
    assert_eq!(
        seen,
        [
            ("a".to_owned(), "1".to_owned()),
            ("message".to_owned(), "2".to_owned())
        ]
    );
    let owned = event("x", "y");
    assert_eq!(owned.as_ref().to_owned(), owned);
}
