//! `keel runs`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;

use crate::args::JsonFlag;
use crate::backend::Backend;
use crate::commands::Ctx;

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Lists the runs, newest last.
pub async fn list(ctx: &Ctx, args: JsonFlag) -> Result<u8> {
    if !ctx.store.exists() {
        if args.json {
            println!("[]");
        } else {
            eprintln!(
                "keel: no store at {} yet (runs appear after `keel run`)",
                ctx.store.display()
            );
        }
        return Ok(0);
    }
    let backend = Backend::connect(&ctx.store).await?;
    let result = async {
        let runs = backend.list().await?;
        if args.json {
            let rows: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let s = r.summary.as_ref();
                    serde_json::json!({
                        "id": r.id.to_string(),
                        "agent": s.map(|s| s.agent.clone()),
                        "status": s.map(|s| s.status.as_str()),
                        "turns": s.map(|s| s.turns),
                        "input_tokens": s.map(|s| s.input_tokens),
                        "output_tokens": s.map(|s| s.output_tokens),
                        "started": s.map(|s| time(s.created_at.0)),
                        "updated": s.map(|s| time(s.updated_at.0)),
                        "title": s.map(|s| s.title.clone()),
                        "parent": s.and_then(|s| s.parent).map(|(p, at)| serde_json::json!({"run": p.to_string(), "at": at.0})),
                        "events": r.events,
                    })
                })
                .collect();
            println!("{}", crate::ui::json_pretty(&rows));
            return Ok(0);
        }
        if runs.is_empty() {
            eprintln!("keel: no runs yet (start one with `keel run`)");
            return Ok(0);
        }
        println!(
            "{:<32}  {:<18} {:<10} {:>5} {:>9}  {:<20}  INPUT",
            "ID", "AGENT", "STATUS", "TURNS", "TOKENS", "STARTED"
        );
        for r in &runs {
            let Some(s) = &r.summary else {
                println!("{:<32}  (no summary)", r.id);
                continue;
            };
            println!(
                "{:<32}  {:<18} {:<10} {:>5} {:>9}  {:<20}  {}",
                r.id,
                crate::ui::one_line(&s.agent, 18),
                s.status.as_str(),
                s.turns,
                s.input_tokens + s.output_tokens,
                time(s.created_at.0),
                crate::ui::one_line(&s.title, 50)
            );
        }
        Ok(0)
    }
    .await;
    backend.close().await;
    result
}
