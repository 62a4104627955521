//! Secret values Keel holds, and the masker that keeps them out of what tools return.
//!
//! This is the second wall around provider keys (the first: commands cannot read
//! them, see [`harden_process`](crate::harden_process) and the exec tool's PID
//! namespace). The process-wide [`Secrets`] set ([`global`]) knows every secret
//! value this process holds: the provider keys captured at start-up, and whatever
//! else is added (the values of host variables the configuration marks as secret).
//! The object-safe tool layer masks them in every tool result and approval form
//! before they leave a tool, whichever tool it is; the CLI masks them in every
//! line it prints.
//!
//! What masking cannot do: find a secret that was transformed (base64, reversed,
//! split over lines, one character changed), or a value shorter than
//! [`MIN_SECRET_LEN`] bytes (masking `1234` everywhere would garble output while
//! protecting nothing). A secret cut in two by output truncation may show in part.
//!
//! ```
//! let secrets = keel_tools::secrets::Secrets::default();
//! secrets.add("ANTHROPIC_API_KEY", "sk-ant-0123456789");
//! assert_eq!(
//!     secrets.mask("key=sk-ant-0123456789!"),
//!     "key=[masked: ANTHROPIC_API_KEY]!"
//! );
//! ```

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use aho_corasick::AhoCorasick;

/// Values shorter than this are not masked.
pub const MIN_SECRET_LEN: usize = 8;

/// A set of named secret values, and a matcher finding all of them in one pass.
#[derive(Default)]
pub struct Secrets {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `(name, value)`, in the order added; a value appears once.
    values: Vec<(String, String)>,
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values are what this type exists to hide.
        f.debug_list().entries(self.names()).finish()
    }
}

impl Secrets {
    /// Adds a secret. Values shorter than [`MIN_SECRET_LEN`] are ignored (returns
    /// false); a value already known keeps its first name.
    pub fn add(&self, name: &str, value: &str) -> bool {
        let value = value.trim();
        if value.len() < MIN_SECRET_LEN {
            return false;
        }
        let Ok(mut inner) = self.inner.write() else {
            return false;
        };
        if inner.values.iter().any(|(_, v)| v == value) {
            return true;
        }
        inner.values.push((name.to_owned(), value.to_owned()));
        // Longest first, so a secret that contains another is masked whole.
        let mut patterns: Vec<&str> = inner.values.iter().map(|(_, v)| v.as_str()).collect();
        patterns.sort_by_key(|v| std::cmp::Reverse(v.len()));
        inner.matcher = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(patterns)
            .ok();
        true
    }

    /// The value held under `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        let inner = self.inner.read().ok()?;
        inner
            .values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The names of the secrets held.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .read()
            .map(|i| i.values.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether no secret is held.
    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .map(|i| i.values.is_empty())
            .unwrap_or(true)
    }

    /// `text` with every secret value replaced by `[masked: NAME]`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Ok(inner) = self.inner.read() else {
            return Cow::Borrowed(text);
        };
        let Some(matcher) = &inner.matcher else {
            return Cow::Borrowed(text);
        };
        let mut out = String::new();
        let mut last = 0;
        for m in matcher.find_iter(text) {
            let value = &text[m.start()..m.end()];
            let name = inner
                .values
                .iter()
                .find(|(_, v)| v == value)
                .map_or("secret", |(n, _)| n.as_str());
            out.push_str(&text[last..m.start()]);
            out.push_str("[masked: ");
            out.push_str(name);
            out.push(']');
            last = m.end();
        }
        if last == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }

    /// Masks in place; returns whether anything was masked.
    pub fn mask_in_place(&self, text: &mut String) -> bool {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
            true
        } else {
            false
        }
    }
}

/// The secrets this process holds (provider keys captured by
/// [`harden_process`](crate::harden_process), and any added since).
pub fn global() -> &'static Secrets {
    static GLOBAL: OnceLock<Secrets> = OnceLock::new();
    GLOBAL.get_or_init(Secrets::default)
}

/// A variable as Keel should read it: the captured value of a secret taken out of
/// the environment by [`harden_process`](crate::harden_process), or else the
/// environment's. Providers read their keys through this, never `std::env::var`.
pub fn var(name: &str) -> Option<String> {
    global().get(name).or_else(|| std::env::var(name).ok())
}

/// Adds the values of the host variables named in `names` (as the `exec.env`
/// configuration marks them secret) to the [`global`] set.
pub fn add_host_values<'a>(
    names: impl IntoIterator<Item = &'a str>,
    host_env: &[(std::ffi::OsString, std::ffi::OsString)],
) {
    for name in names {
        if let Some((_, value)) = host_env.iter().find(|(k, _)| k == name)
            && let Some(value) = value.to_str()
        {
            global().add(name, value);
        }
    }
}

/// Masks every [`global`] secret in what a form shows.
pub fn mask_form(form: &mut crate::ApprovalForm) {
    use crate::FormContext;
    let s = global();
    if s.is_empty() {
        return;
    }
    s.mask_in_place(&mut form.title);
    match &mut form.context {
        FormContext::Command {
            command,
            cwd,
            reason,
            matched_rule,
        } => {
            for text in [command, cwd, reason] {
                s.mask_in_place(text);
            }
            if let Some(rule) = matched_rule {
                s.mask_in_place(rule);
            }
        }
        FormContext::Write { path, content, .. } => {
            s.mask_in_place(path);
            s.mask_in_place(content);
        }
        FormContext::Edit { path, diff } => {
            s.mask_in_place(path);
            s.mask_in_place(diff);
        }
        FormContext::Question { question } => {
            s.mask_in_place(question);
        }
        FormContext::Call { args } => {
            s.mask_in_place(args);
        }
    }
    for field in &mut form.fields {
        s.mask_in_place(&mut field.label);
    }
}

/// Whether a variable holds a provider key Keel captures at start-up: the known
/// providers' keys, and every `*_API_KEY`.
pub fn is_provider_key(name: &str) -> bool {
    name.ends_with("_API_KEY") || name == "ANTHROPIC_AUTH_TOKEN"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let s = Secrets::default();
        assert!(s.add("A", "abcdefgh"));
        assert!(s.add("B", "abcdefgh-longer"));
        assert!(!s.add("SHORT", "1234"));
        assert_eq!(
            s.mask("x abcdefgh-longer y abcdefgh z"),
            "x [masked: B] y [masked: A] z"
        );
        assert!(matches!(s.mask("nothing here"), Cow::Borrowed(_)));
        assert_eq!(s.names(), ["A", "B"]);
        assert_eq!(format!("{s:?}"), r#"["A", "B"]"#);
    }

    #[test]
    fn an_empty_set_masks_nothing() {
        let s = Secrets::default();
        assert_eq!(s.mask("abc"), "abc");
        assert!(s.is_empty());
    }
}
