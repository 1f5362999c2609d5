//! One mise TOML config file: `[tools]`, `[env]`, `[settings]`, `[tool_alias]`/`[alias]`,
//! `min_version`. Other sections (`[tasks]`, `[hooks]`, `[vars]`, …) are accepted and ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml_edit::{Item, TableLike};

use super::template::{TemplateContext, render};
use super::tools::{ToolEntry, parse_tools, scalar_text};
use crate::diagnostic::ConfigError;
use crate::toml_source::{Entry, TomlFile, entries, string, wrong_type};
use crate::{Origin, SourceFile, Spanned};

/// Everything sbx uses from one config file.
#[derive(Clone, Debug, Default)]
pub struct ConfigFile {
    /// Tools in file order.
    pub tools: Vec<ToolEntry>,
    /// `[env]` directives in file order.
    pub env: Vec<EnvDirective>,
    /// `[settings]`, flattened to dotted keys.
    pub settings: BTreeMap<String, Spanned<String>>,
    /// `[tool_alias]` / `[alias]` entries that point a tool name at another backend.
    pub backend_aliases: BTreeMap<String, Spanned<String>>,
    /// `[tool_alias.X.versions]`: tool → alias → version.
    pub version_aliases: BTreeMap<String, BTreeMap<String, Spanned<String>>>,
    /// `min_version` (the hard requirement when written as a table).
    pub min_version: Option<Spanned<String>>,
}

/// One `[env]` entry.
#[derive(Clone, Debug)]
pub enum EnvDirective {
    /// `KEY = "value"` (numbers and booleans as text; `true` is "true").
    Set {
        /// Variable name.
        key: String,
        /// Its value, templates evaluated.
        value: Spanned<String>,
    },
    /// `KEY = false`: remove the variable.
    Unset {
        /// Variable name.
        key: String,
        /// Where it is written.
        origin: Origin,
    },
    /// `_.path = "…"`: prepend to PATH.
    Path(Spanned<String>),
    /// `_.file = ".env"`: load a dotenv file.
    File(Spanned<String>),
    /// `_.source = "script.sh"`: a script mise sources (recorded, never run by sbx).
    Source(Spanned<String>),
    /// Any other `_.x` directive (`_.python.venv`, plugins …), recorded by name.
    Other {
        /// The directive name after `_.`.
        name: String,
        /// Where it is written.
        origin: Origin,
    },
}

/// Parses a mise TOML file.
pub fn parse_mise_toml(file: Arc<SourceFile>, ctx: &TemplateContext<'_>) -> Result<ConfigFile, ConfigError> {
    let toml = TomlFile::parse(file)?;
    let mut out = ConfigFile::default();
    for entry in entries(&toml, toml.root()) {
        match entry.key {
            "tools" => out.tools = parse_tools(&toml, table_like(&entry, "[tools]")?, ctx)?,
            "env" => out.env = parse_env(&toml, table_like(&entry, "[env]")?, ctx)?,
            "settings" => flatten_settings(&toml, table_like(&entry, "[settings]")?, "", &mut out.settings),
            "tool_alias" | "alias" => parse_aliases(&toml, &entry, &mut out)?,
            "min_version" => {
                out.min_version = Some(match entry.item.as_table_like() {
                    Some(t) => {
                        let hard = entries(&toml, t).into_iter().find(|e| e.key == "hard" || e.key == "soft");
                        match hard {
                            Some(e) => string(&e, "`min_version.hard`")?,
                            None => return Err(wrong_type(&entry.origin, "`min_version`", "a version", entry.item)),
                        }
                    }
                    None => string(&entry, "`min_version`")?,
                })
            }
            // Tasks, hooks, vars, watch_files, redactions, plugins, monorepo … are mise's
            // business, not the sandbox's: accepted and ignored.
            _ => {}
        }
    }
    Ok(out)
}

fn table_like<'a>(entry: &Entry<'a>, what: &str) -> Result<&'a dyn TableLike, ConfigError> {
    entry.item.as_table_like().ok_or_else(|| wrong_type(&entry.origin, what, "a table", entry.item))
}

fn parse_env(
    toml: &TomlFile,
    table: &dyn TableLike,
    ctx: &TemplateContext<'_>,
) -> Result<Vec<EnvDirective>, ConfigError> {
    let mut out = Vec::new();
    for entry in entries(toml, table) {
        if entry.key == "_" {
            let directives = table_like(&entry, "`_` in [env]")?;
            for d in entries(toml, directives) {
                let values = one_or_many(toml, &d, ctx)?;
                for v in values {
                    out.push(match d.key {
                        "path" => EnvDirective::Path(v),
                        "file" => EnvDirective::File(v),
                        "source" => EnvDirective::Source(v),
                        other => EnvDirective::Other { name: other.to_string(), origin: v.origin },
                    });
                }
                if d.item.as_table_like().is_some() {
                    out.push(EnvDirective::Other { name: d.key.to_string(), origin: d.origin.clone() });
                }
            }
            continue;
        }
        let key = entry.key.to_string();
        if entry.item.as_bool() == Some(false) {
            out.push(EnvDirective::Unset { key, origin: entry.origin.clone() });
            continue;
        }
        let raw = match entry.item.as_table_like() {
            // `KEY = { value = "…", redact = true }`
            Some(t) => match entries(toml, t).into_iter().find(|e| e.key == "value") {
                Some(v) => scalar_text(&v).map(|s| Spanned::new(s, v.origin.clone())),
                None => None,
            },
            None => scalar_text(&entry).map(|s| Spanned::new(s, entry.origin.clone())),
        };
        let raw =
            raw.ok_or_else(|| wrong_type(&entry.origin, &format!("env `{}`", entry.key), "a string", entry.item))?;
        let value = render(&raw.value, ctx, &raw.origin)?;
        out.push(EnvDirective::Set { key, value: Spanned::new(value, raw.origin) });
    }
    Ok(out)
}

/// `_.path = "x"` or `_.path = ["x", "y"]`; tables (`_.python.venv = {…}`) yield nothing here.
fn one_or_many(
    toml: &TomlFile,
    entry: &Entry<'_>,
    ctx: &TemplateContext<'_>,
) -> Result<Vec<Spanned<String>>, ConfigError> {
    let raw: Vec<Spanned<String>> = match entry.item {
        Item::Value(v) if v.is_str() => vec![string(entry, &format!("`_.{}`", entry.key))?],
        Item::Value(toml_edit::Value::Array(a)) => a
            .iter()
            .map(|v| {
                let origin = toml.origin(v.span());
                v.as_str().map(|s| Spanned::new(s.to_string(), origin.clone())).ok_or_else(|| {
                    wrong_type(&origin, &format!("each `_.{}` entry", entry.key), "a string", &Item::Value(v.clone()))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    raw.into_iter().map(|s| Ok(Spanned::new(render(&s.value, ctx, &s.origin)?, s.origin))).collect()
}

fn flatten_settings(toml: &TomlFile, table: &dyn TableLike, prefix: &str, out: &mut BTreeMap<String, Spanned<String>>) {
    for entry in entries(toml, table) {
        let key = if prefix.is_empty() { entry.key.to_string() } else { format!("{prefix}.{}", entry.key) };
        match entry.item.as_table_like() {
            Some(t) => flatten_settings(toml, t, &key, out),
            None => {
                let text = scalar_text(&entry).unwrap_or_else(|| entry.item.to_string().trim().to_string());
                out.insert(key, Spanned::new(text, entry.origin.clone()));
            }
        }
    }
}

fn parse_aliases(toml: &TomlFile, entry: &Entry<'_>, out: &mut ConfigFile) -> Result<(), ConfigError> {
    let table = table_like(entry, "`[tool_alias]`")?;
    for tool in entries(toml, table) {
        match tool.item.as_table_like() {
            None => {
                out.backend_aliases.insert(tool.key.to_string(), string(&tool, "a tool alias")?);
            }
            Some(t) => {
                for part in entries(toml, t) {
                    if part.key != "versions" {
                        continue;
                    }
                    let versions = table_like(&part, "`versions`")?;
                    let map = out.version_aliases.entry(tool.key.to_string()).or_default();
                    for v in entries(toml, versions) {
                        map.insert(v.key.to_string(), string(&v, "a version alias")?);
                    }
                }
            }
        }
    }
    Ok(())
}
