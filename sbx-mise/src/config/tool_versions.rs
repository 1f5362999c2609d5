//! `.tool-versions` (asdf's format): `tool version [version…]` per line, `#` comments.

use std::sync::Arc;

use super::file::ConfigFile;
use super::tools::{ToolEntry, ToolOptions, ToolVersion};
use crate::diagnostic::ConfigError;
use crate::request::VersionRequest;
use crate::tool_id::ToolId;
use crate::{Origin, SourceFile};

/// Parses a `.tool-versions` file into the same shape as a TOML config.
pub fn parse_tool_versions(file: Arc<SourceFile>) -> Result<ConfigFile, ConfigError> {
    let mut out = ConfigFile::default();
    let text = file.text.clone();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.split('#').next().unwrap_or("");
        let mut tokens = tokens_with_offsets(content).into_iter();
        let Some((name_at, name)) = tokens.next() else { continue };
        let name_origin = Origin::new(&file, start + name_at..start + name_at + name.len());
        let id = ToolId::parse(name).map_err(|e| {
            ConfigError::at(&name_origin, format!("invalid tool name `{name}`: {e}"), "this tool name", None)
        })?;
        let mut versions = Vec::new();
        for (at, token) in tokens {
            let origin = Origin::new(&file, start + at..start + at + token.len());
            let request = VersionRequest::parse(token).map_err(|e| {
                ConfigError::at(&origin, format!("invalid version `{token}`: {e}"), "this version", None)
            })?;
            versions.push(ToolVersion { request, origin, options: ToolOptions::default() });
        }
        if versions.is_empty() {
            return Err(ConfigError::at(
                &name_origin,
                format!("`{name}` has no version"),
                "tool without a version",
                Some(format!("write `{name} <version>`, e.g. `{name} latest`")),
            ));
        }
        out.tools.push(ToolEntry { id, origin: name_origin, versions });
    }
    Ok(out)
}

fn tokens_with_offsets(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((st, &s[st..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_comments_and_spans() {
        let file = SourceFile::new("/p/.tool-versions", "# pinned\nnodejs 22.11.0 20  # two\n\npython 3.12\n");
        let cfg = parse_tool_versions(file).unwrap();
        assert_eq!(cfg.tools.len(), 2);
        assert_eq!(cfg.tools[0].id.display_name(), "node");
        assert_eq!(cfg.tools[0].versions.len(), 2);
        assert_eq!(cfg.tools[0].versions[1].origin.to_string(), "/p/.tool-versions:2");
        assert_eq!(&cfg.tools[1].origin.file.text[cfg.tools[1].origin.span.clone()], "python");
    }

    #[test]
    fn tool_without_version_is_an_error() {
        let err = parse_tool_versions(SourceFile::new("/p/.tool-versions", "node\n")).unwrap_err();
        assert_eq!(err.location(), Some("/p/.tool-versions:1"));
    }
}
