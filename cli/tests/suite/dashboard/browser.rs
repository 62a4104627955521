//! What a person does in the dashboard, in headless Chromium.

use serde_json::json;

use super::{Browser, Ui, generate};
use crate::support::{Project, call, hello_script, say, tool_results};

/// Runs `keel run coding_agent PROMPT` with no terminal: it stops at the first
/// approval (exit 3) and leaves the run waiting in the store. Returns its id.
fn waiting_run(project: &Project, prompt: &str) -> String {
    let (code, _, err) = project.run(&["run", "coding_agent", prompt]);
    assert_eq!(code, 3, "the run waits for an approval: {err}");
    project.runs().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_in_the_browser_finishes_the_run_while_the_page_updates_live() {
    let project = Project::new(hello_script());
    let run = waiting_run(&project, "Write hello.sh, run it, show me the output.");
    let ui = Ui::start(&project);
    let browser = Browser::start().await;

    // The token in the URL becomes a cookie; the list shows the run, in the inbox too.
    browser.goto(&ui.url).await;
    browser.wait_text("#runs tbody tr", "Write hello.sh").await;
    browser.wait_text("#inbox tbody tr", "Write hello.sh").await;
    let url = browser.js("return location.href").await;
    assert_eq!(
        url,
        json!(format!("{}/", ui.base)),
        "the token left the URL"
    );
    browser.screenshot("list").await;

    // The run's page shows what will be written, then the exact command.
    browser
        .click(&format!("#inbox tr[data-run='{run}'] a.run-link"))
        .await;
    browser.wait_text("#approval .step h3", "write").await;
    browser
        .wait_text("#approval .step pre", "Hello, world!")
        .await;
    browser.js("window.__samePage = true; return null").await;
    browser
        .click("#approval button[data-action='approve']")
        .await;
    browser
        .wait_text("#approval .step pre.command", "sh hello.sh")
        .await;
    let cwd = browser
        .js("return document.querySelector('#approval .cwd').textContent")
        .await;
    assert_eq!(cwd, json!(project.workspace().display().to_string()));
    browser.screenshot("approval").await;
    browser
        .click("#approval button[data-action='approve']")
        .await;

    // The run finishes; the page learns it live (no reload).
    browser.wait_text("#status", "completed").await;
    browser
        .wait_text("#tab-trace .node.end", "Done: it printed Hello, world!")
        .await;
    assert_eq!(
        browser.js("return window.__samePage === true").await,
        json!(true),
        "the page was not reloaded"
    );
    assert!(
        browser
            .js("return document.getElementById('approval').hidden")
            .await
            .as_bool()
            .unwrap()
    );
    assert!(project.workspace().join("hello.sh").exists());
    browser.screenshot("trace").await;

    browser.click("#tabs button[data-tab='timeline']").await;
    browser
        .wait_text("#tab-timeline .wf-label", "exec 1.0")
        .await;
    browser.screenshot("timeline").await;
    browser.click("#tabs button[data-tab='graph']").await;
    browser.wait_text("#tab-graph svg", "exec 1.0").await;
    browser.screenshot("graph").await;
    browser.click("#tabs button[data-tab='events']").await;
    browser.wait_text("#events tbody", "run_completed").await;
    browser.screenshot("events").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_with_a_note_reaches_the_model() {
    let project = Project::new(vec![
        call(
            "I'll clear the build directory.",
            "exec",
            json!({"command": "rm -rf build"}),
        ),
        say("Understood: I left the build directory alone."),
    ]);
    let run = waiting_run(&project, "Clean up the project.");
    let ui = Ui::start(&project);
    let browser = Browser::start().await;
    browser.goto(&ui.url).await;
    browser.goto(&format!("{}/runs/{run}", ui.base)).await;
    browser
        .wait_text("#approval .step pre.command", "rm -rf build")
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#approval textarea[name='note']"))
        .await
        .unwrap()
        .send_keys("keep the build directory, it holds the release")
        .await
        .unwrap();
    browser.click("#approval button[data-action='deny']").await;
    browser.wait_text("#status", "completed").await;
    browser
        .wait_text("#tab-trace .resolution", "keep the build directory")
        .await;
    let requests = project.server.requests();
    assert_eq!(
        requests.len(),
        2,
        "the model was asked again after the denial"
    );
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    assert!(results[0].2, "a denial is an error result for the model");
    assert!(
        results[0]
            .1
            .contains("keep the build directory, it holds the release"),
        "{}",
        results[0].1
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_20000_event_run_opens_at_its_end_and_stays_responsive() {
    let project = Project::new(vec![say("unused")]);
    let run = keel_storage::RunId::new();
    {
        let store = keel_storage::SledStore::open(project.path().join(".keel")).unwrap();
        let events = generate::events(
            "coding_agent",
            "a very long session",
            4_999,
            1_700_000_000_000,
        );
        assert_eq!(events.len(), 20_000);
        generate::write_run(&store, run, "coding_agent", "a very long session", &events).await;
    }
    let ui = Ui::start(&project);
    let browser = Browser::start().await;
    browser.goto(&ui.url).await;
    browser.goto(&format!("{}/runs/{run}", ui.base)).await;
    browser
        .wait_text("#earlier-text", "Showing events 19500–19999 of 20000")
        .await;
    browser.wait_text("#tab-trace .node.end", "All done").await;
    let fcp = browser
        .js("const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null")
        .await;
    eprintln!(
        "20,000-event run: first contentful paint at {fcp} ms (the benchmark reports it against its target)"
    );
    assert!(fcp.as_f64().is_some(), "the page painted");

    // Earlier parts load on demand, twice; every view renders what is loaded.
    browser.click("#load-earlier").await;
    browser
        .wait_text("#earlier-text", "Showing events 19000–19999")
        .await;
    browser.click("#load-earlier").await;
    browser
        .wait_text("#earlier-text", "Showing events 18500–19999")
        .await;
    browser.click("#tabs button[data-tab='events']").await;
    browser.wait_text("#events tbody tr", "run_completed").await;
    let rows = browser
        .js("return document.querySelectorAll('#events tbody tr').length")
        .await;
    assert_eq!(rows, json!(1500));
    browser.click("#event-filters input[name='errors']").await;
    let errors = browser
        .js("return document.querySelectorAll('#events tbody tr').length")
        .await;
    // Turn t's ToolFinished is event 4t + 4; turns with t % 97 == 13 failed.
    let expected = (18_500..20_000u64)
        .filter(|seq| seq % 4 == 0 && ((seq - 4) / 4) % 97 == 13)
        .count();
    assert_eq!(
        errors,
        json!(expected),
        "errors only: the failed tool calls of the loaded part"
    );
    browser.click("#tabs button[data-tab='graph']").await;
    browser.wait_text("#tab-graph svg", "turn 4999").await;
    browser.click("#tabs button[data-tab='timeline']").await;
    browser
        .wait_text("#tab-timeline .wf-label", "exec 4998.0")
        .await;
    browser.close().await;
}
