//! Tool names and the backends behind them.
//!
//! A `[tools]` key is either a short name (`node`, `jq`) that the shipped registry
//! (`data/registry.toml`) maps to mise's backends, or a full `backend:name` (`npm:prettier`,
//! `github:cli/cli`, `ubi:BurntSushi/ripgrep[exe=rg]`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A tool source mise knows. Parsing never fails on a known prefix, even when sbx cannot lock it yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendKind {
    /// Built into mise: node, python, go, rust, java, ruby, deno, bun, zig, …
    Core,
    /// The aqua registry.
    Aqua,
    /// asdf plugins.
    Asdf,
    /// crates.io (`cargo install`).
    Cargo,
    /// conda packages.
    Conda,
    /// .NET tools.
    Dotnet,
    /// Ruby gems.
    Gem,
    /// GitHub releases.
    Github,
    /// GitLab releases.
    Gitlab,
    /// `go install`.
    Go,
    /// Plain HTTP downloads.
    Http,
    /// npm packages.
    Npm,
    /// Python applications in their own venv.
    Pipx,
    /// Swift packages.
    Spm,
    /// The universal binary installer (GitHub releases); sbx treats it like `github:`.
    Ubi,
    /// vfox plugins.
    Vfox,
}

impl BackendKind {
    /// Every backend with its prefix, in the order `mise` documents them.
    pub const ALL: [(BackendKind, &'static str); 16] = [
        (Self::Core, "core"),
        (Self::Aqua, "aqua"),
        (Self::Asdf, "asdf"),
        (Self::Cargo, "cargo"),
        (Self::Conda, "conda"),
        (Self::Dotnet, "dotnet"),
        (Self::Gem, "gem"),
        (Self::Github, "github"),
        (Self::Gitlab, "gitlab"),
        (Self::Go, "go"),
        (Self::Http, "http"),
        (Self::Npm, "npm"),
        (Self::Pipx, "pipx"),
        (Self::Spm, "spm"),
        (Self::Ubi, "ubi"),
        (Self::Vfox, "vfox"),
    ];

    /// The prefix written before the colon.
    pub fn prefix(self) -> &'static str {
        Self::ALL.iter().find(|(k, _)| *k == self).map(|(_, p)| *p).unwrap_or("core")
    }
}

impl FromStr for BackendKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.iter().find(|(_, p)| *p == s).map(|(k, _)| *k).ok_or(())
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// One concrete backend for a tool: `core:node`, `npm:@scope/pkg`, `ubi:cli/cli[exe=gh]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendRef {
    /// Which backend.
    pub kind: BackendKind,
    /// The tool's name inside that backend (`node`, `cli/cli`, `@scope/pkg`).
    pub name: String,
    /// Options written in brackets after the name (`[exe=gh]`), sorted.
    pub options: BTreeMap<String, String>,
}

/// Why a `backend:name` string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolNameError {
    /// `xyz:thing` with an unknown prefix.
    #[error("unknown backend `{prefix}`")]
    UnknownBackend {
        /// The prefix as written.
        prefix: String,
        /// The closest known backend, if any is close.
        suggestion: Option<&'static str>,
    },
    /// `npm:` with nothing after it.
    #[error("`{0}` has no tool name after the backend")]
    EmptyName(String),
    /// `ubi:x/y[exe=` with a bracket that never closes, or an option without `=`.
    #[error("malformed options in `{0}`: expected `name[key=value,key=value]`")]
    BadOptions(String),
}

impl BackendRef {
    /// Reads `backend:name[opts]`; returns `Ok(None)` when there is no backend prefix.
    pub fn parse(full: &str) -> Result<Option<Self>, ToolNameError> {
        // A scoped npm name contains no colon before the backend, so the first colon splits.
        let Some((prefix, rest)) = full.split_once(':') else { return Ok(None) };
        let kind = BackendKind::from_str(prefix).map_err(|()| ToolNameError::UnknownBackend {
            prefix: prefix.to_string(),
            suggestion: crate::suggest::closest(prefix, BackendKind::ALL.iter().map(|(_, p)| *p)),
        })?;
        let (name, options) = match rest.find('[') {
            None => (rest, BTreeMap::new()),
            Some(open) => {
                let body = rest[open + 1..].strip_suffix(']').ok_or_else(|| ToolNameError::BadOptions(full.into()))?;
                let mut options = BTreeMap::new();
                for pair in body.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(|| ToolNameError::BadOptions(full.into()))?;
                    options.insert(k.trim().to_string(), v.trim().to_string());
                }
                (&rest[..open], options)
            }
        };
        if name.is_empty() {
            return Err(ToolNameError::EmptyName(full.to_string()));
        }
        Ok(Some(Self { kind, name: name.to_string(), options }))
    }

    /// The directory name mise uses under `installs/` for this backend's tool.
    ///
    /// Core tools use their bare name; others use `backend-name` with `/` replaced by `-`
    /// (mise's `kebab` form: `npm:@anthropic-ai/claude-code` → `npm-anthropic-ai-claude-code`).
    pub fn install_dir_name(&self) -> String {
        if self.kind == BackendKind::Core {
            return self.name.clone();
        }
        let name = self.name.trim_start_matches('@').replace(['/', ':'], "-");
        format!("{}-{}", self.kind, name)
    }
}

impl fmt::Display for BackendRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)?;
        if !self.options.is_empty() {
            let opts: Vec<String> = self.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "[{}]", opts.join(","))?;
        }
        Ok(())
    }
}

/// A tool as named in `[tools]`, with the backends that can provide it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolId {
    /// The key as written (`node`, `npm:prettier`).
    pub key: String,
    /// The registry's canonical short name when the key is a short name or alias (`nodejs` → `node`).
    pub short: Option<String>,
    /// Candidate backends in preference order; empty for a short name the registry does not know.
    pub backends: Vec<BackendRef>,
}

impl ToolId {
    /// Interprets a `[tools]` key, mapping short names through the shipped registry.
    pub fn parse(key: &str) -> Result<Self, ToolNameError> {
        if let Some(backend) = BackendRef::parse(key)? {
            return Ok(Self { key: key.to_string(), short: None, backends: vec![backend] });
        }
        let registry = registry();
        let short = registry.aliases.get(key).cloned().unwrap_or_else(|| key.to_string());
        let backends = registry.tools.get(&short).cloned().unwrap_or_default();
        let known = !backends.is_empty();
        Ok(Self { key: key.to_string(), short: known.then_some(short), backends })
    }

    /// The name the tool is listed under in output and in `sbx.lock`: the short name when
    /// there is one, the full `backend:name` otherwise.
    pub fn display_name(&self) -> &str {
        self.short.as_deref().unwrap_or(&self.key)
    }

    /// The backend mise would use by default (the first candidate).
    pub fn default_backend(&self) -> Option<&BackendRef> {
        self.backends.first()
    }

    /// Short names the registry knows that are close to this unknown one.
    pub fn suggestion(&self) -> Option<&'static str> {
        let registry = registry();
        crate::suggest::closest(&self.key, registry.tools.keys().chain(registry.aliases.keys()).map(|s| s.as_str()))
    }
}

/// The shipped short-name registry, parsed once.
pub struct Registry {
    /// Canonical short name → backends in preference order.
    pub tools: BTreeMap<String, Vec<BackendRef>>,
    /// Alias → canonical short name.
    pub aliases: BTreeMap<String, String>,
}

/// The registry shipped inside the binary (`sbx-mise/data/registry.toml`).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| parse_registry(include_str!("../data/registry.toml")))
}

fn parse_registry(text: &str) -> Registry {
    // The file is part of the source tree and covered by a unit test, so a mistake in it is a
    // build-time bug; entries that fail to parse are skipped rather than aborting a user's run.
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_default();
    let mut tools = BTreeMap::new();
    let mut aliases = BTreeMap::new();
    if let Some(table) = doc.get("tools").and_then(|t| t.as_table_like()) {
        for (name, entry) in table.iter() {
            let strings = |key: &str| -> Vec<String> {
                entry
                    .get(key)
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default()
            };
            let backends: Vec<BackendRef> =
                strings("backends").iter().filter_map(|b| BackendRef::parse(b).ok().flatten()).collect();
            for alias in strings("aliases") {
                aliases.insert(alias, name.to_string());
            }
            tools.insert(name.to_string(), backends);
        }
    }
    Registry { tools, aliases }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_file_is_well_formed() {
        let text = include_str!("../data/registry.toml");
        let doc: toml_edit::DocumentMut = text.parse().expect("registry.toml parses");
        let table = doc["tools"].as_table().expect("[tools]");
        for (name, entry) in table.iter() {
            for b in entry["backends"].as_array().expect("backends array").iter() {
                let b = b.as_str().expect("string");
                assert!(BackendRef::parse(b).unwrap().is_some(), "{name}: bad backend {b}");
            }
        }
        for name in [
            "node",
            "python",
            "go",
            "rust",
            "java",
            "ruby",
            "deno",
            "bun",
            "zig",
            "terraform",
            "jq",
            "ripgrep",
            "gh",
            "uv",
        ] {
            assert!(!registry().tools[name].is_empty(), "{name} missing");
        }
    }

    #[test]
    fn maps_short_names_and_aliases() {
        let node = ToolId::parse("nodejs").unwrap();
        assert_eq!(node.display_name(), "node");
        assert_eq!(node.default_backend().unwrap().to_string(), "core:node");
        let rg = ToolId::parse("rg").unwrap();
        assert_eq!(rg.backends[1].to_string(), "ubi:BurntSushi/ripgrep[exe=rg]");
    }

    #[test]
    fn parses_full_names() {
        let t = ToolId::parse("npm:@anthropic-ai/claude-code").unwrap();
        assert_eq!(t.backends[0].kind, BackendKind::Npm);
        assert_eq!(t.backends[0].name, "@anthropic-ai/claude-code");
        assert_eq!(t.backends[0].install_dir_name(), "npm-anthropic-ai-claude-code");
        let g = ToolId::parse("go:github.com/foo/bar").unwrap();
        assert_eq!(g.backends[0].kind, BackendKind::Go);
        assert_eq!(g.backends[0].name, "github.com/foo/bar");
        let u = ToolId::parse("ubi:cli/cli[exe=gh, matching=linux]").unwrap();
        assert_eq!(u.backends[0].options["exe"], "gh");
        assert_eq!(u.backends[0].options["matching"], "linux");
    }

    #[test]
    fn unknown_names() {
        let t = ToolId::parse("nodee").unwrap();
        assert!(t.backends.is_empty());
        assert_eq!(t.suggestion(), Some("node"));
        match BackendRef::parse("gihub:cli/cli") {
            Err(ToolNameError::UnknownBackend { suggestion, .. }) => assert_eq!(suggestion, Some("github")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(BackendRef::parse("npm:"), Err(ToolNameError::EmptyName(_))));
        assert!(matches!(BackendRef::parse("ubi:a/b[exe=x"), Err(ToolNameError::BadOptions(_))));
    }
}
