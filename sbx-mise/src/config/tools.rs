//! The `[tools]` table in every form mise accepts.
//!
//! ```toml
//! [tools]
//! node = "22"                                  # one version (space-separated: several)
//! python = ["3.12", "3.11"]                    # several; the first wins on PATH, all install
//! go = { version = "1.23", os = ["linux"] }    # inline table: exactly one of version|path|prefix|ref
//! "ubi:cli/cli" = { version = "latest", exe = "gh" }   # backend options
//! [tools.ruby]                                 # section form, same keys as the inline table
//! version = "3.3"
//! install_env = { RUBY_CONFIGURE_OPTS = "--disable-install-doc" }
//! postinstall = "gem install bundler"
//! ```

use std::collections::BTreeMap;

use toml_edit::{Item, TableLike, Value};

use super::template::{TemplateContext, render};
use crate::diagnostic::ConfigError;
use crate::request::VersionRequest;
use crate::toml_source::{Entry, TomlFile, entries, string, string_array, wrong_type};
use crate::tool_id::{ToolId, ToolNameError};
use crate::{Origin, Spanned};

/// One tool as configured in one file.
#[derive(Clone, Debug)]
pub struct ToolEntry {
    /// The tool and its candidate backends.
    pub id: ToolId,
    /// Where the tool's key is written.
    pub origin: Origin,
    /// The requested versions in order (the first wins on PATH; all are installed).
    pub versions: Vec<ToolVersion>,
}

/// One requested version of a tool, with the options written next to it.
#[derive(Clone, Debug)]
pub struct ToolVersion {
    /// The typed request.
    pub request: VersionRequest,
    /// Where the version is written.
    pub origin: Origin,
    /// Options that came with it.
    pub options: ToolOptions,
}

/// The non-version keys of a tool's table.
#[derive(Clone, Debug, Default)]
pub struct ToolOptions {
    /// `os = ["linux", "macos"]`: install only on these OSes (`None` = everywhere).
    pub os: Option<Vec<Spanned<String>>>,
    /// `install_env = { K = "v" }`: environment for mise's install step.
    pub install_env: BTreeMap<String, Spanned<String>>,
    /// `postinstall = "…"`: a command mise runs after installing (sbx records it, never runs it
    /// while reading config).
    pub postinstall: Option<Spanned<String>>,
    /// Every other key, flattened with dots (`platforms.linux-x64.url`), as its TOML text
    /// for non-strings.
    pub backend: BTreeMap<String, Spanned<String>>,
}

impl ToolOptions {
    /// Whether the tool applies to an OS named the mise way (`linux`, `macos`).
    pub fn applies_to_os(&self, os: &str) -> bool {
        self.os.as_ref().is_none_or(|list| list.iter().any(|o| o.value == os))
    }
}

const VERSION_KEYS: [&str; 4] = ["version", "path", "prefix", "ref"];

/// Reads a whole `[tools]` table.
pub fn parse_tools(
    file: &TomlFile,
    table: &dyn TableLike,
    ctx: &TemplateContext<'_>,
) -> Result<Vec<ToolEntry>, ConfigError> {
    entries(file, table).iter().map(|entry| parse_tool(file, entry, ctx)).collect()
}

fn parse_tool(file: &TomlFile, entry: &Entry<'_>, ctx: &TemplateContext<'_>) -> Result<ToolEntry, ConfigError> {
    let id = ToolId::parse(entry.key).map_err(|e| tool_name_error(entry, &e))?;
    let versions = match entry.item {
        Item::Value(Value::String(_)) => {
            let raw = string(entry, "a tool version")?;
            split_versions(&raw, ctx)?
        }
        Item::Value(Value::Array(array)) => {
            let mut out = Vec::new();
            for value in array.iter() {
                let origin = file.origin(value.span());
                match value {
                    Value::String(s) => out.extend(split_versions(&Spanned::new(s.value().clone(), origin), ctx)?),
                    Value::InlineTable(t) => out.push(parse_table_form(file, t, &origin, ctx)?),
                    other => {
                        return Err(wrong_type(
                            &origin,
                            &format!("each version of `{}`", entry.key),
                            "a string or an inline table",
                            &Item::Value(other.clone()),
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(ConfigError::at(
                    &entry.origin,
                    format!("`{}` lists no versions", entry.key),
                    "empty array",
                    Some(format!("write at least one version, e.g. `{} = \"latest\"`", entry.key)),
                ));
            }
            out
        }
        Item::Value(Value::InlineTable(t)) => vec![parse_table_form(file, t, &entry.origin, ctx)?],
        Item::Table(t) => vec![parse_table_form(file, t, &entry.origin, ctx)?],
        other => {
            return Err(wrong_type(
                &entry.origin,
                &format!("tool `{}`", entry.key),
                "a version string, an array of versions, or a table",
                other,
            ));
        }
    };
    Ok(ToolEntry { id, origin: entry.key_origin.clone(), versions })
}

fn tool_name_error(entry: &Entry<'_>, e: &ToolNameError) -> ConfigError {
    let help = match e {
        ToolNameError::UnknownBackend { suggestion: Some(s), .. } => format!("did you mean `{s}:`?"),
        ToolNameError::UnknownBackend { .. } => {
            "known backends: core, aqua, asdf, cargo, conda, dotnet, gem, github, gitlab, go, http, npm, pipx, spm, ubi, vfox"
                .into()
        }
        ToolNameError::EmptyName(_) => "write the tool after the colon, e.g. `npm:prettier`".into(),
        ToolNameError::BadOptions(_) => "write options as `backend:name[key=value,key=value]`".into(),
    };
    ConfigError::at(&entry.key_origin, format!("invalid tool name `{}`: {e}", entry.key), "this tool name", Some(help))
}

/// A version string may hold several space-separated versions, as in `.tool-versions`.
fn split_versions(raw: &Spanned<String>, ctx: &TemplateContext<'_>) -> Result<Vec<ToolVersion>, ConfigError> {
    let rendered = render(&raw.value, ctx, &raw.origin)?;
    let parts: Vec<&str> = rendered.split_whitespace().collect();
    if parts.is_empty() {
        return Err(ConfigError::at(
            &raw.origin,
            "empty tool version",
            "no version here",
            Some("write a version such as \"22\", \"latest\" or \"lts\"".into()),
        ));
    }
    parts
        .into_iter()
        .map(|p| {
            Ok(ToolVersion {
                request: parse_request(p, &raw.origin)?,
                origin: raw.origin.clone(),
                options: ToolOptions::default(),
            })
        })
        .collect()
}

fn parse_request(raw: &str, origin: &Origin) -> Result<VersionRequest, ConfigError> {
    VersionRequest::parse(raw).map_err(|e| {
        ConfigError::at(
            origin,
            format!("invalid version `{raw}`: {e}"),
            "this version",
            Some("use a version (22, 3.12.1), latest, lts, prefix:X, ref:X, path:X or sub-N:X".into()),
        )
    })
}

fn parse_table_form(
    file: &TomlFile,
    table: &dyn TableLike,
    origin: &Origin,
    ctx: &TemplateContext<'_>,
) -> Result<ToolVersion, ConfigError> {
    let all = entries(file, table);
    let given: Vec<&Entry<'_>> = all.iter().filter(|e| VERSION_KEYS.contains(&e.key)).collect();
    let version_entry = match given.as_slice() {
        [one] => *one,
        [] => {
            return Err(ConfigError::at(
                origin,
                "tool table has no version",
                "needs one of version, path, prefix, ref",
                Some("add `version = \"…\"` (or exactly one of `path`, `prefix`, `ref`)".into()),
            ));
        }
        [_, second, ..] => {
            return Err(ConfigError::at(
                &second.key_origin,
                format!("tool table sets both `{}` and `{}`", given[0].key, second.key),
                "second version key",
                Some("keep exactly one of version, path, prefix, ref".into()),
            ));
        }
    };
    let raw = string(version_entry, &format!("`{}`", version_entry.key))?;
    let value = render(&raw.value, ctx, &raw.origin)?;
    let request = match version_entry.key {
        "version" => parse_request(&value, &raw.origin)?,
        kind => parse_request(&format!("{kind}:{value}"), &raw.origin)?,
    };
    let mut options = ToolOptions::default();
    for entry in all.iter().filter(|e| !VERSION_KEYS.contains(&e.key)) {
        match entry.key {
            "os" => options.os = Some(string_array(file, entry, "`os`")?),
            "postinstall" => options.postinstall = Some(string(entry, "`postinstall`")?),
            "install_env" => {
                let Some(t) = entry.item.as_table_like() else {
                    return Err(wrong_type(&entry.origin, "`install_env`", "a table", entry.item));
                };
                for e in entries(file, t) {
                    let v = scalar_text(&e)
                        .ok_or_else(|| wrong_type(&e.origin, "an install_env value", "a string", e.item))?;
                    options.install_env.insert(e.key.to_string(), Spanned::new(v, e.origin.clone()));
                }
            }
            _ => flatten_option(file, entry, entry.key.to_string(), &mut options.backend)?,
        }
    }
    Ok(ToolVersion { request, origin: raw.origin, options })
}

/// Backend options: nested tables become dotted keys.
fn flatten_option(
    file: &TomlFile,
    entry: &Entry<'_>,
    key: String,
    out: &mut BTreeMap<String, Spanned<String>>,
) -> Result<(), ConfigError> {
    if let Some(t) = entry.item.as_table_like() {
        for e in entries(file, t) {
            flatten_option(file, &e, format!("{key}.{}", e.key), out)?;
        }
        return Ok(());
    }
    let text = scalar_text(entry).unwrap_or_else(|| entry.item.to_string().trim().to_string());
    out.insert(key, Spanned::new(text, entry.origin.clone()));
    Ok(())
}

/// A scalar as text: strings unquoted, numbers and booleans as written.
pub(crate) fn scalar_text(entry: &Entry<'_>) -> Option<String> {
    match entry.item.as_value()? {
        Value::String(s) => Some(s.value().clone()),
        Value::Integer(i) => Some(i.value().to_string()),
        Value::Float(f) => Some(f.value().to_string()),
        Value::Boolean(b) => Some(b.value().to_string()),
        _ => None,
    }
}
