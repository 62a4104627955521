//! Checks a tool call's JSON arguments against the tool's JSON schema before they are
//! parsed, so the model is told which field is wrong and why, in words it can act on.
//!
//! This is a validator of the subset of JSON Schema that tool schemas use: `type`
//! (one name or a list), `properties`, `required`, `additionalProperties` (a boolean
//! or a schema), `enum`, `const`, `minimum`/`maximum` (and their exclusive forms),
//! `minLength`/`maxLength`, `items`, `minItems`/`maxItems`, `anyOf`/`oneOf` (each
//! branch tried; the call passes if any branch does). Other keywords (`$ref`,
//! `pattern`, `format`, ...) are ignored: serde's parsing after this check stays the
//! final authority, so an ignored keyword can only make the message less precise,
//! never let a malformed call through. A full validator (`jsonschema`) would bring a
//! reference resolver, a second regex engine and number-fraction crates for keywords
//! none of our schemas use.

use serde_json::Value;

/// Checks `value` against `schema`; the error names the first field that is wrong.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, &mut Vec::new())
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "the arguments".to_owned()
    } else {
        format!("`{}`", path.join("."))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn matches_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        // An unknown type name is the schema's mistake; don't blame the model for it.
        _ => true,
    }
}

fn article(name: &str) -> String {
    match name {
        "integer" | "array" | "object" => format!("an {name}"),
        "null" => "null".to_owned(),
        _ => format!("a {name}"),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn check(schema: &Value, value: &Value, path: &mut Vec<String>) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        // `true`, `{}` or anything that is not an object accepts every value.
        return Ok(());
    };

    if let Some(ty) = schema.get("type") {
        let names: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|n| matches_type(n, value)) {
            let expected: Vec<String> = names.iter().map(|n| article(n)).collect();
            return Err(format!(
                "{} must be {}, got {} ({})",
                at(path),
                expected.join(" or "),
                type_name(value),
                short(value)
            ));
        }
    }

    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        let listed: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(format!(
            "{} must be one of {}, got {}",
            at(path),
            listed.join(", "),
            short(value)
        ));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!(
            "{} must be {expected}, got {}",
            at(path),
            short(value)
        ));
    }

    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key)
            && !branches.is_empty()
        {
            let mut first_error = None;
            let mut passed = false;
            for branch in branches {
                match check(branch, value, path) {
                    Ok(()) => {
                        passed = true;
                        break;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !passed && let Some(e) = first_error {
                return Err(e);
            }
        }
    }

    match value {
        Value::Number(n) => check_number(schema, n, path)?,
        Value::String(s) => check_string(schema, s, path)?,
        Value::Array(items) => check_array(schema, items, path)?,
        Value::Object(fields) => check_object(schema, fields, path)?,
        _ => {}
    }
    Ok(())
}

fn check_number(
    schema: &serde_json::Map<String, Value>,
    n: &serde_json::Number,
    path: &[String],
) -> Result<(), String> {
    let Some(x) = n.as_f64() else { return Ok(()) };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && x < min
    {
        return Err(format!("{} must be at least {min}, got {n}", at(path)));
    }
    if let Some(max) = bound("maximum")
        && x > max
    {
        return Err(format!("{} must be at most {max}, got {n}", at(path)));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && x <= min
    {
        return Err(format!("{} must be greater than {min}, got {n}", at(path)));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && x >= max
    {
        return Err(format!("{} must be less than {max}, got {n}", at(path)));
    }
    Ok(())
}

fn check_string(
    schema: &serde_json::Map<String, Value>,
    s: &str,
    path: &[String],
) -> Result<(), String> {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(if min == 1 {
            format!("{} must not be empty", at(path))
        } else {
            format!("{} must be at least {min} characters long", at(path))
        });
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!(
            "{} must be at most {max} characters long, got {len}",
            at(path)
        ));
    }
    Ok(())
}

fn check_array(
    schema: &serde_json::Map<String, Value>,
    items: &[Value],
    path: &mut Vec<String>,
) -> Result<(), String> {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!(
            "{} must have at least {min} items, got {len}",
            at(path)
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!(
            "{} must have at most {max} items, got {len}",
            at(path)
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            path.push(i.to_string());
            let result = check(item_schema, item, path);
            path.pop();
            result?;
        }
    }
    Ok(())
}

fn check_object(
    schema: &serde_json::Map<String, Value>,
    fields: &serde_json::Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                path.push(name.to_owned());
                let message = format!("missing required field {}", at(path));
                path.pop();
                return Err(message);
            }
        }
    }
    for (name, field) in fields {
        path.push(name.clone());
        let result = match properties.and_then(|p| p.get(name)) {
            Some(field_schema) => check(field_schema, field, path),
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let mut known: Vec<String> = properties
                        .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
                        .unwrap_or_default();
                    known.sort();
                    Err(if known.is_empty() {
                        format!("unknown field {}: this tool takes no arguments", at(path))
                    } else {
                        format!(
                            "unknown field {}; the fields are {}",
                            at(path),
                            known.join(", ")
                        )
                    })
                }
                Some(extra @ Value::Object(_)) => check(extra, field, path),
                _ => Ok(()),
            },
        };
        path.pop();
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "offset": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "nested": {"type": "object", "properties": {"x": {"type": "boolean"}}}
            },
            "required": ["path"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_valid_arguments() {
        let ok =
            json!({"path": "a", "offset": 3, "mode": "b", "tags": ["x"], "nested": {"x": true}});
        assert_eq!(validate(&schema(), &ok), Ok(()));
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (json!({}), "missing required field `path`"),
            (
                json!({"path": 3}),
                "`path` must be a string, got an integer (3)",
            ),
            (json!({"path": ""}), "`path` must not be empty"),
            (
                json!({"path": "a", "offset": "5"}),
                "`offset` must be an integer, got a string (\"5\")",
            ),
            (
                json!({"path": "a", "offset": 1.5}),
                "`offset` must be an integer, got a number (1.5)",
            ),
            (
                json!({"path": "a", "offset": 0}),
                "`offset` must be at least 1, got 0",
            ),
            (
                json!({"path": "a", "mode": "c"}),
                "`mode` must be one of \"a\", \"b\", got \"c\"",
            ),
            (
                json!({"path": "a", "tags": ["x", 1]}),
                "`tags.1` must be a string, got an integer (1)",
            ),
            (
                json!({"path": "a", "tags": ["x", "y", "z"]}),
                "`tags` must have at most 2 items, got 3",
            ),
            (
                json!({"path": "a", "nested": {"x": "yes"}}),
                "`nested.x` must be a boolean, got a string (\"yes\")",
            ),
            (
                json!({"path": "a", "colour": 1}),
                "unknown field `colour`; the fields are `mode`, `nested`, `offset`, `path`, `tags`",
            ),
            (
                json!(["a"]),
                "the arguments must be an object, got an array ([\"a\"])",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                validate(&schema(), &value),
                Err(expected.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn any_of_passes_when_one_branch_does() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(validate(&s, &json!(3)), Ok(()));
        assert_eq!(validate(&s, &json!("x")), Ok(()));
        assert!(validate(&s, &json!(true)).is_err());
    }

    #[test]
    fn unknown_keywords_are_ignored() {
        let s = json!({"type": "string", "pattern": "^a", "format": "uri"});
        assert_eq!(validate(&s, &json!("zzz")), Ok(()));
    }
}
