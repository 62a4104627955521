//! The approval prompt, as in the Polos local-coding-agent guide: what the agent
//! wants, then yes / no (with feedback for the agent) / always. "Always" remembers
//! exactly what was shown (a command: this command line in this directory); a
//! broader rule is a separate choice, shown in words before it is stored.

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;

use keel_engine::{Decision, PendingStep};
use keel_tools::{AllowRule, FieldKind, FormContext};

const RULE: &str = "============================================================";

/// Lines of content an approval shows before it says how much it leaves out.
const SHOW_LINES: usize = 400;
/// Characters of one line an approval shows before it says how many it leaves out.
const SHOW_WIDTH: usize = 2000;

/// Appends `text`, indented, made safe (secrets masked, control characters
/// visible), whole up to [`SHOW_LINES`] lines of [`SHOW_WIDTH`] characters; beyond
/// that it says exactly what is not shown and where to see it.
fn show(out: &mut String, text: &str) {
    let text = super::safe(text);
    let total = text.lines().count();
    for line in text.lines().take(SHOW_LINES) {
        let width = line.chars().count();
        if width > SHOW_WIDTH {
            let cut: String = line.chars().take(SHOW_WIDTH).collect();
            out.push_str(&format!(
                "     {cut}… [{} more characters on this line not shown]\n",
                width - SHOW_WIDTH
            ));
        } else {
            out.push_str(&format!("     {line}\n"));
        }
    }
    if total > SHOW_LINES {
        let hidden: usize = text.lines().skip(SHOW_LINES).map(|l| l.len() + 1).sum();
        out.push_str(&format!(
            "     … {} more lines ({hidden} bytes) are not shown here; `keel export <run>` prints the whole call\n",
            total - SHOW_LINES
        ));
    }
}

/// Renders what a person must decide on. Everything that came from the model or a
/// tool is shown made safe, and whole unless it is very long (then the prompt says
/// how much is not shown and how to see it).
pub fn render(step: &PendingStep) -> String {
    use super::safe;
    let form = &step.form;
    let mut out = String::new();
    out.push_str(&format!("{RULE}\n {}\n{RULE}\n", safe(&form.title)));
    match &form.context {
        FormContext::Command {
            command,
            cwd,
            reason,
            matched_rule,
        } => {
            out.push_str(" The agent wants to run a command on your machine:\n");
            if command.contains('\n') {
                out.push_str("   Command:\n");
                show(&mut out, command);
            } else {
                out.push_str(&format!("   Command:   {}\n", safe(command)));
            }
            out.push_str(&format!("   Directory: {}\n", safe(cwd)));
            if !reason.is_empty() {
                out.push_str(&format!("   Why asked: {}\n", safe(reason)));
            }
            if let Some(rule) = matched_rule {
                out.push_str(&format!("   Matched:   {}\n", safe(rule)));
            }
        }
        FormContext::Write {
            path,
            content,
            overwrites,
        } => {
            out.push_str(&format!(
                " The agent wants to use the \"{}\" tool:\n   Path: {}{}\n   Content:\n",
                safe(&form.tool),
                safe(path),
                if *overwrites {
                    " (replaces the file)"
                } else {
                    ""
                }
            ));
            show(&mut out, content);
        }
        FormContext::Edit { path, diff } => {
            out.push_str(&format!(
                " The agent wants to use the \"{}\" tool:\n   Path: {}\n   Change:\n",
                safe(&form.tool),
                safe(path)
            ));
            show(&mut out, diff);
        }
        FormContext::Question { question } => {
            out.push_str(&format!(" The agent asks:\n   {}\n", safe(question)));
        }
        FormContext::Call { args } => {
            out.push_str(&format!(
                " The agent wants to call \"{}\" with:\n",
                safe(&form.tool)
            ));
            show(&mut out, args);
        }
    }
    out
}

/// The broader rule a person may choose for a command, with its words.
fn broader(step: &PendingStep) -> Option<(AllowRule, String)> {
    match &step.form.context {
        FormContext::Command { command, cwd, .. } => {
            keel_tools::sandbox::exec_always_choices(command, cwd)
                .into_iter()
                .nth(1)
        }
        _ => None,
    }
}

/// The question closing the prompt.
pub fn question(step: &PendingStep) -> String {
    match &step.form.context {
        FormContext::Command { .. } => match broader(step) {
            Some((_, words)) => format!(
                " Approve this command? [y]es / [n]o / [a]lways (exactly this command here) /\n   [p]refix: always allow {words}: "
            ),
            None => " Approve this command? [y]es / [n]o / [a]lways (exactly this command here): "
                .to_owned(),
        },
        _ => format!(
            " Approve this operation? [y]es / [n]o / [a]lways (any \"{}\" call in this run): ",
            step.form.tool
        ),
    }
}

/// Where answers come from: lines typed at the terminal.
pub trait Lines: Send {
    /// The next line; an error when the terminal closed.
    fn next_line(&mut self) -> impl Future<Output = std::io::Result<String>> + Send;
}

impl Lines for tokio::sync::mpsc::UnboundedReceiver<String> {
    async fn next_line(&mut self) -> std::io::Result<String> {
        self.recv().await.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the terminal closed before an answer",
            )
        })
    }
}

impl Lines for VecDeque<String> {
    async fn next_line(&mut self) -> std::io::Result<String> {
        self.pop_front().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the terminal closed before an answer",
            )
        })
    }
}

/// Reads standard input line by line on a thread of its own, so a prompt can be
/// abandoned (answered from another terminal) without losing a reader.
pub fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Asks the person at the terminal (`input`/`output`) to decide.
pub async fn ask(
    step: &PendingStep,
    input: &mut impl Lines,
    output: &mut (impl Write + Send),
) -> std::io::Result<Decision> {
    write!(output, "\n{}", render(step))?;
    if matches!(step.form.context, FormContext::Question { .. }) {
        return answer_question(step, input, output).await;
    }
    loop {
        write!(output, "{}", question(step))?;
        output.flush()?;
        let line = input.next_line().await?;
        match line.trim().to_lowercase().as_str() {
            "y" | "yes" => {
                writeln!(output, "  -> Approved. Resuming...")?;
                return Ok(Decision::approve().shown(step.form.digest.clone()));
            }
            "a" | "always" => {
                writeln!(
                    output,
                    "  -> Approved, and allowed again exactly so for the rest of this run. Resuming..."
                )?;
                return Ok(Decision::approve().always().shown(step.form.digest.clone()));
            }
            "p" | "prefix" if broader(step).is_some() => {
                let Some((rule, words)) = broader(step) else {
                    continue;
                };
                writeln!(
                    output,
                    "  -> Approved; for the rest of this run, allowing {words}. Resuming..."
                )?;
                return Ok(Decision::approve()
                    .always_as(rule)
                    .shown(step.form.digest.clone()));
            }
            "n" | "no" => {
                write!(
                    output,
                    " Feedback for the agent (optional, Enter to skip): "
                )?;
                output.flush()?;
                let note = input.next_line().await?;
                writeln!(output, "  -> Denied. Resuming...")?;
                let mut decision = Decision::deny().shown(step.form.digest.clone());
                if !note.trim().is_empty() {
                    decision = decision.with_note(note.trim());
                }
                return Ok(decision);
            }
            _ if broader(step).is_some() => writeln!(output, "  Please answer y, n, a or p.")?,
            _ => writeln!(output, "  Please answer y, n or a.")?,
        }
    }
}

async fn answer_question(
    step: &PendingStep,
    input: &mut impl Lines,
    output: &mut (impl Write + Send),
) -> std::io::Result<Decision> {
    let mut answer = serde_json::Map::new();
    for field in &step.form.fields {
        loop {
            let hint = match &field.kind {
                FieldKind::Text => String::new(),
                FieldKind::Number => " (a number)".to_owned(),
                FieldKind::Boolean => " (y/n)".to_owned(),
                FieldKind::Select { options } => {
                    format!(" ({})", super::safe(&options.join(" / ")))
                }
            };
            let optional = if field.required { "" } else { " [optional]" };
            write!(output, " {}{hint}{optional}: ", super::safe(&field.label))?;
            output.flush()?;
            let line = input.next_line().await?;
            let text = line.trim();
            if text.is_empty() && !field.required {
                break;
            }
            let value = match &field.kind {
                FieldKind::Text if !text.is_empty() => Some(serde_json::Value::from(text)),
                FieldKind::Number => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number),
                FieldKind::Boolean => match text.to_lowercase().as_str() {
                    "y" | "yes" | "true" => Some(true.into()),
                    "n" | "no" | "false" => Some(false.into()),
                    _ => None,
                },
                FieldKind::Select { options } => options
                    .iter()
                    .find(|o| o.eq_ignore_ascii_case(text))
                    .map(|o| serde_json::Value::from(o.as_str())),
                FieldKind::Text => None,
            };
            match value {
                Some(v) => {
                    answer.insert(field.name.clone(), v);
                    break;
                }
                None => writeln!(output, "  That does not fit; try again.")?,
            }
        }
    }
    writeln!(output, "  -> Answered. Resuming...")?;
    Ok(Decision::answer(serde_json::Value::Object(answer)).shown(step.form.digest.clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keel_engine::{CallId, StepKey, Turn};
    use keel_tools::{ApprovalForm, Field};

    use super::*;

    fn step(context: FormContext, title: &str, fields: Vec<Field>) -> PendingStep {
        PendingStep {
            step: StepKey::from("0.0"),
            call: CallId::new(Turn(0), 0),
            tool: "exec".into(),
            form: Arc::new(ApprovalForm {
                title: title.into(),
                tool: "exec".into(),
                context,
                fields,
                digest: "d1".into(),
            }),
        }
    }

    fn command() -> PendingStep {
        step(
            FormContext::Command {
                command: "node hello.js".into(),
                cwd: "/ws".into(),
                reason: "every command needs approval (approval-always)".into(),
                matched_rule: None,
            },
            "COMMAND APPROVAL REQUIRED",
            vec![],
        )
    }

    fn lines(text: &str) -> VecDeque<String> {
        text.lines().map(|l| format!("{l}\n")).collect()
    }

    #[tokio::test]
    async fn command_prompt_snapshot() {
        let mut out = Vec::new();
        let decision = ask(&command(), &mut lines("y"), &mut out).await.unwrap();
        assert_eq!(decision, Decision::approve().shown("d1"));
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[tokio::test]
    async fn no_with_feedback_and_always() {
        let mut out = Vec::new();
        let decision = ask(&command(), &mut lines("maybe\nn\nuse bun"), &mut out)
            .await
            .unwrap();
        assert_eq!(decision, Decision::deny().shown("d1").with_note("use bun"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Please answer y, n, a or p."));
        let decision = ask(&command(), &mut lines("a"), &mut Vec::new())
            .await
            .unwrap();
        assert!(decision.always && decision.approved);
        // Plain "always" names no broader rule: the engine stores the exact one.
        assert_eq!(decision.rule, None);
    }

    #[tokio::test]
    async fn the_broader_rule_is_a_separate_choice_shown_in_words() {
        let mut out = Vec::new();
        let decision = ask(&command(), &mut lines("p"), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("[p]refix: always allow any command starting `node hello.js` in /ws"),
            "{text}"
        );
        assert!(text.contains("allowing any command starting `node hello.js` in /ws"));
        let (rule, _) = keel_tools::sandbox::exec_always_choices("node hello.js", "/ws")
            .into_iter()
            .nth(1)
            .unwrap();
        assert_eq!(decision.rule, Some(rule));
        assert!(decision.always && decision.approved);
        // A line no prefix describes offers only "exactly this".
        let mut step = command();
        step.form = Arc::new(ApprovalForm {
            context: FormContext::Command {
                command: "make && ./run > log".into(),
                cwd: "/ws".into(),
                reason: String::new(),
                matched_rule: None,
            },
            ..(*step.form).clone()
        });
        let mut out = Vec::new();
        let decision = ask(&step, &mut lines("p\na"), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("[p]refix"), "{text}");
        assert!(text.contains("Please answer y, n or a."), "{text}");
        assert_eq!(decision.rule, None);
    }

    #[tokio::test]
    async fn write_prompt_snapshot() {
        let write = step(
            FormContext::Write {
                path: "/ws/hello.js".into(),
                content: "console.log(\"Hello from the local sandbox!\");\n".into(),
                overwrites: false,
            },
            "WRITE APPROVAL REQUIRED",
            vec![],
        );
        let mut out = Vec::new();
        ask(&write, &mut lines("y"), &mut out).await.unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[tokio::test]
    async fn questions_collect_typed_answers() {
        let q = step(
            FormContext::Question {
                question: "Where to deploy?".into(),
            },
            "QUESTION FROM THE AGENT",
            vec![
                Field {
                    name: "env".into(),
                    label: "Environment".into(),
                    kind: FieldKind::Select {
                        options: vec!["dev".into(), "prod".into()],
                    },
                    required: true,
                },
                Field {
                    name: "count".into(),
                    label: "Replicas".into(),
                    kind: FieldKind::Number,
                    required: true,
                },
            ],
        );
        let mut out = Vec::new();
        let decision = ask(&q, &mut lines("staging\nDev\nx\n3"), &mut out)
            .await
            .unwrap();
        assert_eq!(
            decision.answer,
            Some(serde_json::json!({"env": "dev", "count": 3.0}))
        );
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[tokio::test]
    async fn a_closed_terminal_is_an_error_not_an_approval() {
        let err = ask(&command(), &mut lines(""), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
