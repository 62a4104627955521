//! The built-in `ask_user` tool: the model asks the person a question and the run
//! waits for the answer, through the same durable machinery as approvals.

use keel_tools::{
    AllowRule, Approval, ApprovalForm, CallContext, Field, FieldKind, FormContext, Tool,
    ToolOutput, ToolSpec, approval_digest,
};
use serde::Deserialize;

/// The name the model calls it by.
pub const ASK_USER: &str = "ask_user";

/// Asks the person a question; the answer is the call's result.
#[derive(Debug, Clone, Copy, Default)]
pub struct AskUser;

/// The arguments of `ask_user`.
#[derive(Debug, Clone, Deserialize)]
pub struct AskUserArgs {
    /// The question.
    pub question: String,
    /// A short headline.
    pub title: Option<String>,
    /// The fields to answer; one free-text `answer` field when absent.
    #[serde(default)]
    pub fields: Vec<FieldArg>,
}

/// A field the model asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldArg {
    /// The key of the answer.
    pub name: String,
    /// What to show; the name when absent.
    pub label: Option<String>,
    /// `text`, `number`, `boolean` or `select`.
    #[serde(rename = "type", default = "text_kind")]
    pub kind: String,
    /// The options of a `select`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Whether an answer must give it (default true).
    pub required: Option<bool>,
}

fn text_kind() -> String {
    "text".to_owned()
}

impl AskUser {
    fn fields(args: &AskUserArgs) -> Result<Vec<Field>, String> {
        if args.fields.is_empty() {
            return Ok(vec![Field {
                name: "answer".to_owned(),
                label: "Answer".to_owned(),
                kind: FieldKind::Text,
                required: true,
            }]);
        }
        args.fields
            .iter()
            .map(|f| {
                let kind = match f.kind.as_str() {
                    "text" => FieldKind::Text,
                    "number" => FieldKind::Number,
                    "boolean" => FieldKind::Boolean,
                    "select" if !f.options.is_empty() => FieldKind::Select {
                        options: f.options.clone(),
                    },
                    "select" => {
                        return Err(format!(
                            "field `{}` is a select without options; give `options`",
                            f.name
                        ));
                    }
                    other => {
                        return Err(format!(
                            "field `{}` has unknown type `{other}`; use text, number, boolean or select",
                            f.name
                        ));
                    }
                };
                Ok(Field {
                    name: f.name.clone(),
                    label: f.label.clone().unwrap_or_else(|| f.name.clone()),
                    kind,
                    required: f.required.unwrap_or(true),
                })
            })
            .collect()
    }
}

impl Tool for AskUser {
    type Args = AskUserArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: ASK_USER.to_owned(),
            description: "Ask the user a question and wait for the answer. Use it when you need \
                          information or a choice only the user can give. Optional fields \
                          structure the answer (text, number, boolean, select)."
                .to_owned(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The question to ask."},
                    "title": {"type": "string", "description": "A short headline."},
                    "fields": {
                        "type": "array",
                        "description": "The fields to answer. Default: one free-text field `answer`.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "label": {"type": "string"},
                                "type": {"type": "string", "enum": ["text", "number", "boolean", "select"]},
                                "options": {"type": "array", "items": {"type": "string"}},
                                "required": {"type": "boolean"}
                            },
                            "required": ["name"]
                        }
                    }
                },
                "required": ["question"]
            }),
        }
    }

    fn is_mutating(&self) -> bool {
        false
    }

    fn approval(
        &self,
        args: &AskUserArgs,
        raw: &serde_json::Value,
        _rules: &[AllowRule],
    ) -> Approval {
        match Self::fields(args) {
            Ok(fields) => Approval::Needed(Box::new(ApprovalForm {
                title: args
                    .title
                    .clone()
                    .unwrap_or_else(|| "QUESTION FROM THE AGENT".to_owned()),
                tool: ASK_USER.to_owned(),
                context: FormContext::Question {
                    question: args.question.clone(),
                },
                fields,
                digest: approval_digest(ASK_USER, raw, ""),
            })),
            Err(reason) => Approval::Refused(reason),
        }
    }

    async fn call(&self, _args: AskUserArgs, _ctx: CallContext) -> ToolOutput {
        // The engine finishes ask_user calls with the person's answer; it never runs them.
        ToolOutput::error("ask_user is answered by the user, not run")
    }
}

/// Checks an answer against a question's fields and returns it as JSON text.
pub fn validate_answer(form: &ApprovalForm, answer: &serde_json::Value) -> Result<String, String> {
    let object = answer
        .as_object()
        .ok_or("the answer must be a JSON object of field names to values")?;
    for field in &form.fields {
        match object.get(&field.name) {
            None | Some(serde_json::Value::Null) if field.required => {
                return Err(format!("field `{}` is required", field.name));
            }
            None | Some(serde_json::Value::Null) => {}
            Some(value) => {
                let fits = match &field.kind {
                    FieldKind::Text => value.is_string(),
                    FieldKind::Number => value.is_number(),
                    FieldKind::Boolean => value.is_boolean(),
                    FieldKind::Select { options } => value
                        .as_str()
                        .is_some_and(|v| options.iter().any(|o| o == v)),
                };
                if !fits {
                    let expected = match &field.kind {
                        FieldKind::Text => "text".to_owned(),
                        FieldKind::Number => "a number".to_owned(),
                        FieldKind::Boolean => "true or false".to_owned(),
                        FieldKind::Select { options } => format!("one of {}", options.join(", ")),
                    };
                    return Err(format!("field `{}` must be {expected}", field.name));
                }
            }
        }
    }
    if let Some(unknown) = object
        .keys()
        .find(|k| !form.fields.iter().any(|f| &f.name == *k))
    {
        return Err(format!("the question has no field `{unknown}`"));
    }
    Ok(answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_tools::DynTool;

    fn form(raw: serde_json::Value) -> ApprovalForm {
        match AskUser.approval_json(&raw, &[]).unwrap() {
            Approval::Needed(form) => *form,
            other => panic!("expected a form, got {other:?}"),
        }
    }

    #[test]
    fn default_field_is_free_text() {
        let f = form(serde_json::json!({"question": "Name?"}));
        assert_eq!(f.fields.len(), 1);
        assert_eq!(f.fields[0].name, "answer");
        assert!(validate_answer(&f, &serde_json::json!({"answer": "Ada"})).is_ok());
        assert_eq!(
            validate_answer(&f, &serde_json::json!({})).unwrap_err(),
            "field `answer` is required"
        );
    }

    #[test]
    fn typed_fields_are_checked() {
        let f = form(serde_json::json!({
            "question": "Deploy?",
            "fields": [
                {"name": "count", "type": "number"},
                {"name": "ok", "type": "boolean"},
                {"name": "env", "type": "select", "options": ["dev", "prod"]},
                {"name": "why", "required": false}
            ]
        }));
        let good = serde_json::json!({"count": 2, "ok": true, "env": "dev"});
        assert!(validate_answer(&f, &good).is_ok());
        let bad = serde_json::json!({"count": "2", "ok": true, "env": "dev"});
        assert_eq!(
            validate_answer(&f, &bad).unwrap_err(),
            "field `count` must be a number"
        );
        let bad = serde_json::json!({"count": 2, "ok": true, "env": "qa"});
        assert_eq!(
            validate_answer(&f, &bad).unwrap_err(),
            "field `env` must be one of dev, prod"
        );
        let bad = serde_json::json!({"count": 2, "ok": true, "env": "dev", "x": 1});
        assert_eq!(
            validate_answer(&f, &bad).unwrap_err(),
            "the question has no field `x`"
        );
    }

    #[test]
    fn bad_fields_are_errors_for_the_model() {
        // The schema names the allowed types.
        let raw = serde_json::json!({"question": "?", "fields": [{"name": "a", "type": "date"}]});
        let err = AskUser.approval_json(&raw, &[]).unwrap_err();
        assert!(err.contains("`fields.0.type` must be one of"), "{err}");
        // What the schema cannot say is refused with a reason.
        let raw = serde_json::json!({"question": "?", "fields": [{"name": "a", "type": "select"}]});
        assert!(matches!(
            AskUser.approval_json(&raw, &[]).unwrap(),
            Approval::Refused(r) if r.contains("select without options")
        ));
    }
}
