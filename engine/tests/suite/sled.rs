//! The engine on the real sled store, reopened between "processes".

use keel_engine::{Decision, Keel, RunOutcome};
use keel_storage::SledStore;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_survives_reopening_the_sled_store_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call("look", &[("look", json!({"key": "a"}))]),
        call("write", &[("put", json!({"path": "p", "content": "c"}))]),
        say("done"),
    ]);
    let run = {
        let keel = Keel::new(SledStore::open(dir.path()).unwrap());
        let run = keel
            .invoke(&agent(provider.clone(), &effects, "p"), "go")
            .await
            .unwrap();
        assert!(matches!(
            run.result().await.unwrap(),
            RunOutcome::Suspended { .. }
        ));
        keel.shutdown().await;
        run.id()
    };
    // A new process: the store reopened, the agent registered again.
    let keel = Keel::new(SledStore::open(dir.path()).unwrap());
    keel.register(agent(provider.clone(), &effects, "p"));
    let report = keel.recover().await.unwrap();
    assert_eq!(report.waiting, vec![run]);
    let RunOutcome::Suspended { waiting } = keel.result(run).await.unwrap() else {
        panic!("expected the run to wait")
    };
    keel.resume(run, &waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert_eq!(
        keel.result(run).await.unwrap(),
        RunOutcome::Completed {
            output: "done".into(),
            stopped_by: None
        }
    );
    assert_eq!(provider.total_calls(), 3, "no turn was sent twice");
    assert_eq!(effects.files.lock().unwrap().len(), 1);
}
