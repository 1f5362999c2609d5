//! Refusals: what was blocked, by which rule, and the `.sbx.toml` change that would allow it.
//!
//! The text is written for the agent inside the sandbox as much as for the human: it is short,
//! names the rule, and gives one concrete line to add, so the agent reports it instead of
//! probing for another way out.

use std::fmt;

use crate::policy::Matched;

/// How a refused request could be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Add `text` to `list` under `[sandbox]` in `.sbx.toml`.
    Add {
        /// `allowed_domains` or `allowed_cidrs`.
        list: &'static str,
        /// The entry to add.
        text: String,
        /// Where that list is already written (e.g. `.sbx.toml:4`), if it is.
        at: Option<String>,
    },
    /// Remove a blocking rule.
    Remove {
        /// `blocked_domains` or `blocked_cidrs`.
        list: &'static str,
        /// The rule.
        text: String,
        /// Where it is written.
        source: String,
    },
    /// Nothing in the policy can allow this (e.g. domain fronting); says why.
    Impossible(&'static str),
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The destination, `host:port`.
    pub target: String,
    /// What is wrong, in one sentence.
    pub reason: String,
    /// The rule that refused it.
    pub rule: Matched,
    /// How to allow it.
    pub fix: Fix,
}

impl Refusal {
    /// A refusal that no configuration can lift.
    pub(crate) fn impossible(target: String, reason: String, rule_text: &str, why: &'static str) -> Refusal {
        Refusal {
            target,
            reason,
            rule: Matched { list: "tunnel check", text: rule_text.into(), source: "built in".into() },
            fix: Fix::Impossible(why),
        }
    }

    /// The exact `.sbx.toml` line that would allow this, if one exists.
    pub fn toml_line(&self) -> Option<String> {
        match &self.fix {
            Fix::Add { list, text, .. } => Some(format!("{list} = [{}]", toml_string(text))),
            Fix::Remove { .. } | Fix::Impossible(_) => None,
        }
    }

    /// The body of the `403` answer: what, which rule, how to allow it.
    pub fn body(&self, method: &str) -> String {
        let mut out = format!("sbx proxy: blocked {method} {}\n", self.target);
        out.push_str(&format!("reason: {}\n", self.reason));
        out.push_str(&format!("rule: {}\n", self.rule));
        match &self.fix {
            Fix::Add { list, at, .. } => {
                if let Some(line) = self.toml_line() {
                    match at {
                        Some(at) => out.push_str(&format!(
                            "to allow it, add the entry to {list} under [sandbox] in .sbx.toml ({list} is at {at}):\n"
                        )),
                        None => out.push_str("to allow it, add under [sandbox] in .sbx.toml:\n"),
                    }
                    out.push_str(&format!("    {line}\n"));
                }
            }
            Fix::Remove { list, text, source } => {
                out.push_str(&format!("to allow it, remove \"{text}\" from {list} ({source})\n"));
            }
            Fix::Impossible(why) => out.push_str(&format!("this cannot be allowed: {why}\n")),
        }
        out.push_str("Do not try other routes: the sandbox has no other way out. Ask the user to change the policy.\n");
        out
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.target, self.reason, self.rule)
    }
}

/// Quotes `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_rule_and_line() {
        let r = Refusal {
            target: "example.com:443".into(),
            reason: "example.com is not on the allowed list of the balanced preset".into(),
            rule: Matched { list: "preset", text: "balanced".into(), source: "default".into() },
            fix: Fix::Add { list: "allowed_domains", text: "example.com".into(), at: None },
        };
        let body = r.body("CONNECT");
        assert!(body.starts_with("sbx proxy: blocked CONNECT example.com:443\n"));
        assert!(body.contains("rule: preset \"balanced\" (default)\n"));
        assert!(body.contains("add under [sandbox] in .sbx.toml:\n    allowed_domains = [\"example.com\"]\n"));
        let r = Refusal {
            fix: Fix::Add { list: "allowed_domains", text: "example.com".into(), at: Some(".sbx.toml:4".into()) },
            ..r
        };
        assert!(
            r.body("GET").contains("(allowed_domains is at .sbx.toml:4):\n    allowed_domains = [\"example.com\"]\n")
        );
    }
}
