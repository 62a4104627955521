//! The scripted provider read from a file on disk, behind the shared handle.

use keel_providers::{
    ContentBlock, Error, LlmProvider, Message, Request, Role, Scripted, SharedProvider,
};

#[tokio::test]
async fn a_script_file_plays_through_a_shared_provider() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    std::fs::write(
        &path,
        r#"{"responses": [
            {"content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "README"}}],
             "usage": {"input_tokens": 12, "output_tokens": 3}},
            {"expect": {"tool_results": ["read"], "contains": "Keel"},
             "content": [{"type": "text", "text": "It is about Keel."}]}
        ]}"#,
    )
    .unwrap();
    let scripted = std::sync::Arc::new(Scripted::from_file(&path).unwrap());
    let provider = SharedProvider::new(scripted.clone());
    assert_eq!(provider.name(), "scripted");

    let mut request = Request::new("m", vec![Message::user("what is the README about?")]);
    let first = provider.complete(&request, &|_| {}).await.unwrap();
    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::Assistant,
        content: first.content,
    });
    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: "t1".into(),
            content: "# Keel\nA durable runtime.".into(),
            is_error: false,
        }],
    });
    let second = provider.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(second.text(), "It is about Keel.");
    assert_eq!(scripted.calls(), 2);
    let err = provider.complete(&request, &|_| {}).await.unwrap_err();
    assert!(matches!(err, Error::Script(_)), "{err}");
}

#[test]
fn a_broken_script_file_names_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, r#"[{"content": [{"type": "text"}]}]"#).unwrap();
    let error = Scripted::from_file(&path).unwrap_err().to_string();
    assert!(
        error.contains("broken.json") && error.contains("missing field `text`"),
        "{error}"
    );
    let error = Scripted::from_file(dir.path().join("absent.json"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read the script") && error.contains("absent.json"),
        "{error}"
    );
}
