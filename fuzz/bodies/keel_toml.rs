//! `keel_toml`: the `keel.toml` parser (`keel_cli::config::parse`).
//!
//! Properties: any text gives `Ok` or an `Err` with a message, never a panic; every
//! agent parsed has the id of its table and a known provider; an agent survives the
//! JSON a process sends to the store's owner unchanged; its exec patterns either
//! compile or are refused with an error, and its sandbox configuration never panics
//! when the policy is built from it.

use keel_cli::config::{AgentSpec, parse};
use keel_tools::sandbox::ExecPolicy;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let agents = match parse(text) {
        Ok(agents) => agents,
        Err(e) => {
            assert!(!format!("{e:#}").is_empty(), "an error without a message");
            return;
        }
    };
    for (id, spec) in &agents {
        assert_eq!(&spec.id, id);
        assert!(matches!(
            spec.provider.as_str(),
            "anthropic" | "openai" | "scripted"
        ));
        let json = serde_json::to_string(spec)
            .unwrap_or_else(|e| panic!("agent `{id}` cannot be sent to the owner: {e}"));
        let back: AgentSpec = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("agent `{id}` sent as {json} does not parse back: {e}"));
        assert_eq!(
            &back, spec,
            "agent `{id}` changed on its way to the owner ({json})"
        );
        let exec = &spec.tools.exec;
        let _ = ExecPolicy::new(exec.security, &exec.allowlist, &exec.deny);
    }
}
