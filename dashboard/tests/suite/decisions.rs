//! Answers are bound to the digest of the form shown; a second answer is a 409.

use serde_json::{Value, json};

use crate::support::{Dash, coding_agent};

/// Starts the recorded coding session and waits until it waits for a person.
pub async fn waiting_run(dash: &Dash) -> (String, Value) {
    let r = dash
        .post(
            "/api/runs",
            &json!({"agent": "coding_agent", "input": "write hello.sh and run it"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let run = r.json()["run"].as_str().unwrap().to_owned();
    wait_for_step(dash, &run, 0).await
}

/// Follows the run's events until it waits at a step other than the `answered`
/// first ones; returns the run and its waiting step.
pub async fn wait_for_step(dash: &Dash, run: &str, answered: usize) -> (String, Value) {
    let mut events = dash.sse(&format!("/api/runs/{run}/events"), None).await;
    let mut asked = 0;
    while let Some(e) = events.next().await {
        if e.event == "entry" && e.data.contains("\"kind\":\"approval_requested\"") {
            asked += 1;
            if asked > answered {
                break;
            }
        }
        assert_ne!(e.event, "end", "the run ended before waiting");
    }
    let view = dash.get(&format!("/api/runs/{run}")).await.json();
    assert_eq!(view["run"]["status"], "suspended", "{view}");
    (run.to_owned(), view["waiting"][0].clone())
}

#[tokio::test]
async fn an_answer_names_the_digest_it_saw_and_a_second_answer_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let dash = Dash::start(vec![coding_agent(&dir.path().join("ws"))]).await;
    let (run, step) = waiting_run(&dash).await;
    let form = &step["form"];
    assert_eq!(form["tool"], "write");
    assert!(
        form["context"]["Write"]["content"]
            .as_str()
            .unwrap()
            .contains("Hello from Keel")
    );
    let path = format!("/api/runs/{run}/decisions");

    let r = dash
        .post(&path, &json!({"step": step["step"], "decision": "approve"}))
        .await;
    assert_eq!(r.status, 400, "a decision without a digest: {}", r.body);
    let r = dash
        .post(
            &path,
            &json!({"step": step["step"], "decision": "approve", "digest": "ab".repeat(32)}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("different request"), "{}", r.body);
    let r = dash
        .post(
            &path,
            &json!({"step": step["step"], "decision": "maybe", "digest": form["digest"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let r = dash
        .post(
            &path,
            &json!({"step": step["step"], "decision": "approve", "digest": form["digest"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["continued"],
        true,
        "the server's own runtime continues the run"
    );
    let r = dash
        .post(
            &path,
            &json!({"step": step["step"], "decision": "deny", "digest": form["digest"]}),
        )
        .await;
    assert_eq!(r.status, 409, "already decided: {}", r.body);

    // The next step (the command) waits; deny it with a note, then the run ends.
    let (_, exec) = wait_for_step(&dash, &run, 1).await;
    let command = &exec["form"]["context"]["Command"];
    assert_eq!(command["command"], "sh hello.sh");
    assert!(
        !command["cwd"].as_str().unwrap().is_empty()
            && !command["reason"].as_str().unwrap().is_empty()
    );
    let r = dash
        .post(
            &path,
            &json!({"decision": "deny", "note": "not now", "digest": exec["form"]["digest"]}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the only waiting step is the default: {}",
        r.body
    );
    let log = dash
        .get(&format!("/api/runs/{run}?limit=1000"))
        .await
        .json();
    let resolved: Vec<&Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval_resolved")
        .collect();
    let last = &resolved.last().unwrap()["event"]["ApprovalResolved"]["resolution"];
    assert_eq!(last["approved"], false);
    assert_eq!(last["note"], "not now");
    assert_eq!(last["by"], "dashboard");
}

#[tokio::test]
async fn cancel_ends_a_waiting_run() {
    let dir = tempfile::tempdir().unwrap();
    let dash = Dash::start(vec![coding_agent(&dir.path().join("ws"))]).await;
    let (run, _) = waiting_run(&dash).await;
    let r = dash
        .post(
            &format!("/api/runs/{run}/cancel"),
            &json!({"reason": "enough"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let view = dash.get(&format!("/api/runs/{run}")).await.json();
    assert_eq!(view["run"]["status"], "cancelled");
    assert!(view["waiting"].as_array().unwrap().is_empty());
    let r = dash
        .post(&format!("/api/runs/{run}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
}
