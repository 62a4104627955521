//! The live stream: `id: <seq>` on every recorded event; a reconnect with
//! `Last-Event-ID` resumes right after it, with no gap and no duplicate.

use serde_json::json;

use crate::suite::decisions::waiting_run;
use crate::support::{Dash, coding_agent};

#[tokio::test]
async fn a_reconnect_with_last_event_id_resumes_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let dash = Dash::start(vec![coding_agent(&dir.path().join("ws"))]).await;
    let (run, step) = waiting_run(&dash).await;
    let path = format!("/api/runs/{run}/events");

    // First connection: read three recorded events, then drop it.
    let mut first = dash.sse(&path, None).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = first.next().await.unwrap();
        if e.event == "entry" {
            let entry: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(e.id, entry["seq"].as_u64(), "the SSE id is the event's seq");
            seen.push(e.id.unwrap());
        } else {
            assert!(e.id.is_none(), "only recorded events carry ids: {e:?}");
        }
    }
    drop(first);

    // Approve, so more events are recorded while nobody listens…
    let r = dash
        .post(
            &format!("/api/runs/{run}/decisions"),
            &json!({"step": step["step"], "decision": "approve", "digest": step["form"]["digest"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // …and resume where the first connection stopped (a `from` query is overridden).
    let last = *seen.last().unwrap();
    let mut second = dash.sse(&format!("{path}?from=0"), Some(last)).await;
    let mut ids = Vec::new();
    while ids.len() < 4 {
        let e = second.next().await.unwrap();
        if let Some(id) = e.id {
            ids.push(id);
        }
    }
    let expected: Vec<u64> = (last + 1..last + 5).collect();
    assert_eq!(
        ids, expected,
        "resumed right after {last}: no gap, no duplicate"
    );
}

#[tokio::test]
async fn a_finished_run_streams_its_tail_and_ends_and_a_bad_last_event_id_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let dash = Dash::start(vec![coding_agent(&dir.path().join("ws"))]).await;
    let (run, _) = waiting_run(&dash).await;
    assert_eq!(
        dash.post(&format!("/api/runs/{run}/cancel"), &json!({}))
            .await
            .status,
        200
    );
    let len = dash.get(&format!("/api/runs/{run}")).await.json()["run"]["events"]
        .as_u64()
        .unwrap();
    let mut tail = dash
        .sse(&format!("/api/runs/{run}/events"), Some(len - 3))
        .await;
    let mut names = Vec::new();
    while let Some(e) = tail.next().await {
        names.push((e.event.clone(), e.id));
    }
    let ids: Vec<u64> = names.iter().filter_map(|(_, id)| *id).collect();
    assert_eq!(ids, vec![len - 2, len - 1]);
    assert_eq!(names.last().unwrap().0, "end", "{names:?}");
    let host = dash.host();
    let bearer = dash.bearer();
    let r = crate::support::send(
        dash.addr(),
        "GET",
        &format!("/api/runs/{run}/events"),
        &[
            ("host", &host),
            ("authorization", &bearer),
            ("last-event-id", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = dash
        .get("/api/runs/0190f0f0f0f0f0f0f0f0f0f0f0f0f0f0/events")
        .await;
    assert_eq!(r.status, 404);
}
