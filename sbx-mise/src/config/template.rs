//! The small, safe subset of mise's templates that sbx evaluates.
//!
//! Supported inside `{{ … }}`: `config_root`, `env.NAME`, and
//! `get_env(name="NAME", default="value")`. Everything else — `exec(…)`, filters, `{% %}`
//! blocks, unknown names — is refused with a diagnostic: a config file must never run code just
//! because sbx read it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Origin;
use crate::diagnostic::ConfigError;

/// What templates can see.
pub struct TemplateContext<'a> {
    /// The directory the config file belongs to (`{{config_root}}`).
    pub config_root: &'a Path,
    /// The environment `{{env.X}}` and `get_env` read.
    pub env: &'a BTreeMap<String, String>,
}

/// Renders every `{{ … }}` in `input`; `origin` is where the value sits, for errors.
pub fn render(input: &str, ctx: &TemplateContext<'_>, origin: &Origin) -> Result<String, ConfigError> {
    if !input.contains("{{") && !input.contains("{%") && !input.contains("{#") {
        return Ok(input.to_string());
    }
    if input.contains("{%") || input.contains("{#") {
        return Err(refuse(origin, input, "template blocks and comments (`{% %}`, `{# #}`) are not supported"));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(ConfigError::at(
                origin,
                format!("unclosed template in `{input}`"),
                "`{{` without `}}`",
                Some("close the expression with `}}`".into()),
            ));
        };
        out.push_str(&evaluate(after[..end].trim(), ctx, origin, input)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn evaluate(expr: &str, ctx: &TemplateContext<'_>, origin: &Origin, input: &str) -> Result<String, ConfigError> {
    if expr == "config_root" {
        return Ok(ctx.config_root.display().to_string());
    }
    if let Some(name) = expr.strip_prefix("env.")
        && is_identifier(name)
    {
        return ctx.env.get(name).cloned().ok_or_else(|| {
            ConfigError::at(
                origin,
                format!("environment variable `{name}` is not set (used in `{input}`)"),
                "reads an unset variable",
                Some(format!("set {name}, or use `get_env(name=\"{name}\", default=\"…\")` to give a default")),
            )
        });
    }
    if let Some(args) = expr.strip_prefix("get_env(").and_then(|a| a.strip_suffix(')')) {
        let args = parse_kwargs(args).ok_or_else(|| {
            refuse(origin, input, "`get_env` takes `name=\"…\"` and an optional `default=\"…\"`, as string literals")
        })?;
        let name = args.get("name").ok_or_else(|| refuse(origin, input, "`get_env` needs `name=\"…\"`"))?;
        if let Some(unknown) = args.keys().find(|k| *k != "name" && *k != "default") {
            return Err(refuse(origin, input, &format!("`get_env` has no argument `{unknown}`")));
        }
        return match (ctx.env.get(name), args.get("default")) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(d)) => Ok(d.clone()),
            (None, None) => Err(ConfigError::at(
                origin,
                format!("environment variable `{name}` is not set and `get_env` has no default"),
                "reads an unset variable",
                Some(format!("set {name} or add `default=\"…\"`")),
            )),
        };
    }
    let what = if expr.starts_with("exec(") || expr.contains("exec(") {
        "`exec(…)` would run a command while reading config; sbx never does that"
    } else if expr.contains('|') {
        "template filters are not supported"
    } else {
        "unknown template expression"
    };
    Err(refuse(origin, input, what))
}

fn refuse(origin: &Origin, input: &str, why: &str) -> ConfigError {
    ConfigError::at(
        origin,
        format!("unsupported template in `{input}`: {why}"),
        "cannot evaluate this",
        Some("sbx evaluates only {{config_root}}, {{env.NAME}} and {{get_env(name=\"NAME\", default=\"…\")}}; write the value literally".into()),
    )
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses `name="X", default="y"` (double or single quotes, no escapes needed in practice).
fn parse_kwargs(args: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        if !is_identifier(key) {
            return None;
        }
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let body = &after[1..];
        let end = body.find(quote)?;
        out.insert(key.to_string(), body[..end].to_string());
        rest = body[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;

    fn run(input: &str) -> Result<String, ConfigError> {
        let env = BTreeMap::from([("HOME".to_string(), "/home/u".to_string())]);
        let ctx = TemplateContext { config_root: Path::new("/proj"), env: &env };
        let file = SourceFile::new("/proj/mise.toml", format!("x = \"{input}\"\n"));
        render(input, &ctx, &Origin::new(&file, 4..4 + input.len() + 2))
    }

    #[test]
    fn evaluates_supported_forms() {
        assert_eq!(run("{{config_root}}/bin").unwrap(), "/proj/bin");
        assert_eq!(run("{{ env.HOME }}/x").unwrap(), "/home/u/x");
        assert_eq!(run("{{get_env(name=\"NOPE\", default=\"d\")}}").unwrap(), "d");
        assert_eq!(run("{{ get_env(name='HOME') }}").unwrap(), "/home/u");
        assert_eq!(run("plain").unwrap(), "plain");
    }

    #[test]
    fn refuses_code_and_unknowns() {
        for bad in ["{{exec(command=\"id\")}}", "{{ env.HOME | upper }}", "{% if x %}", "{{ cwd }}", "{{config_root"] {
            let err = run(bad).unwrap_err();
            assert_eq!(err.location(), Some("/proj/mise.toml:1"), "{bad}");
            assert!(err.help_text().is_some(), "{bad}");
        }
        let err = run("{{exec(command=\"id\")}}").unwrap_err();
        assert!(err.to_string().contains("exec"), "{err}");
        assert!(run("{{env.UNSET_VAR}}").unwrap_err().to_string().contains("UNSET_VAR"));
    }
}
