//! The runs list pages on the server (newest first, cursor paging, filters); a
//! run's events page from the end.

use std::collections::HashSet;

use keel_storage::SledStore;

use crate::support::{Dash, generate};

#[tokio::test]
async fn the_runs_list_pages_with_a_cursor_and_filters_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let store = SledStore::open(dir.path().join("store")).unwrap();
        generate::many_runs(&store, 130).await
    };
    let dash = Dash::start_in(dir, vec![]).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = dash
            .get(&format!("/api/runs?limit=50&cursor={cursor}"))
            .await
            .json();
        assert_eq!(page["total"], 130);
        for r in page["runs"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().map(ToString::to_string).collect();
    assert_eq!(seen, newest_first, "every run once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 130);

    let page = dash.get("/api/runs?agent=agent-1&limit=1000").await.json();
    assert_eq!(page["total"], 33);
    assert!(
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["agent"] == "agent-1")
    );
    let page = dash
        .get("/api/runs?text=MODULE%20M7&limit=1000")
        .await
        .json();
    assert!(
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["title"].as_str().unwrap().contains("module m7"))
    );
    assert_eq!(page["total"], 3, "m7 and not m17… : {page}");
    let page = dash.get("/api/runs?status=completed").await.json();
    assert_eq!(page["total"], 130);
    let row = &page["runs"][0];
    assert_eq!(row["model"], "claude-sonnet-4-5");
    assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "priced: {row}");
    assert_eq!(
        dash.get("/api/runs?status=suspended").await.json()["total"],
        0
    );
    let since = dash.get("/api/runs").await.json()["runs"][9]["created_at"]
        .as_u64()
        .unwrap();
    assert_eq!(
        dash.get(&format!("/api/runs?since={since}")).await.json()["total"],
        10
    );
    assert_eq!(dash.get("/api/runs?status=sleeping").await.status, 400);
    assert_eq!(dash.get("/api/runs?cursor=nope").await.status, 400);
    assert_eq!(
        dash.get("/api/runs?colour=red").await.status,
        400,
        "unknown filters are errors, not ignored"
    );
}

#[tokio::test]
async fn a_long_run_opens_at_its_end_and_earlier_parts_load_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let run = keel_storage::RunId::new();
    {
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let events = generate::events("long", "a long session", 2499, 1_700_000_000_000);
        generate::write_run(&store, run, "long", "a long session", &events).await;
    }
    let dash = Dash::start_in(dir, vec![]).await;
    let first = dash.get(&format!("/api/runs/{run}")).await.json();
    assert_eq!(first["run"]["events"], 10_000);
    assert_eq!(
        (first["from"].as_u64(), first["to"].as_u64()),
        (Some(9_500), Some(10_000))
    );
    let seqs: Vec<u64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (9_500..10_000).collect::<Vec<_>>());
    assert_eq!(first["events"][499]["kind"], "run_completed");
    let earlier = dash
        .get(&format!("/api/runs/{run}?before=9500&limit=1000"))
        .await
        .json();
    assert_eq!(
        (earlier["from"].as_u64(), earlier["to"].as_u64()),
        (Some(8_500), Some(9_500))
    );
    assert_eq!(earlier["events"].as_array().unwrap().len(), 1000);
    let start = dash
        .get(&format!("/api/runs/{run}?before=3&limit=1000"))
        .await
        .json();
    assert_eq!(start["from"], 0);
    assert_eq!(start["events"][0]["kind"], "run_started");
    let capped = dash
        .get(&format!("/api/runs/{run}?limit=100000"))
        .await
        .json();
    assert_eq!(
        capped["events"].as_array().unwrap().len(),
        keel_dashboard::MAX_PAGE
    );
    assert_eq!(
        dash.get(&format!("/api/runs/{run}?before=x")).await.status,
        400
    );
}
