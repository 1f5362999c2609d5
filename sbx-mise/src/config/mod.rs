//! Reading mise configuration the way mise does, keeping every value's origin.
//!
//! [`load`] discovers the files ([`discover`]), parses each ([`file`], [`tool_versions`]),
//! evaluates the safe template subset ([`template`]) and merges them: for each tool the
//! highest-precedence file wins, `[env]` and `[settings]` merge key by key.

pub mod discover;
pub mod file;
pub mod template;
pub mod tool_versions;
pub mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use discover::{DiscoverOptions, FoundFile, Scope};
pub use file::{ConfigFile, EnvDirective};
pub use tools::{ToolEntry, ToolOptions, ToolVersion};

use crate::diagnostic::ConfigError;
use crate::request::VersionRequest;
use crate::tool_id::{BackendRef, ToolId};
use crate::{Origin, SourceFile, Spanned};
use template::TemplateContext;

/// A tool in the merged configuration.
#[derive(Clone, Debug)]
pub struct ConfiguredTool {
    /// The winning entry.
    pub entry: ToolEntry,
    /// Entries for the same tool in lower-precedence files that this one replaced.
    pub shadowed: Vec<Origin>,
}

/// The merged configuration of a project.
#[derive(Clone, Debug, Default)]
pub struct MiseConfig {
    /// The files read, lowest precedence first.
    pub files: Vec<FoundFile>,
    /// Tools by display name (`node`, `npm:prettier`), sorted.
    pub tools: BTreeMap<String, ConfiguredTool>,
    /// `[env]` directives of every file, lowest precedence first (later ones win).
    pub env: Vec<EnvDirective>,
    /// `[settings]`, merged (the highest-precedence file wins per key).
    pub settings: BTreeMap<String, Spanned<String>>,
    /// The strictest `min_version` found.
    pub min_version: Vec<Spanned<String>>,
}

/// Reads and merges every config file mise would read for `opts.project_dir`.
pub fn load(opts: &DiscoverOptions) -> Result<MiseConfig, ConfigError> {
    let mut config = MiseConfig::default();
    let mut backend_aliases: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    let mut version_aliases: BTreeMap<String, BTreeMap<String, Spanned<String>>> = BTreeMap::new();
    for found in discover::discover(opts) {
        let text = std::fs::read_to_string(&found.path)
            .map_err(|source| ConfigError::Io { path: found.path.clone(), source })?;
        let source = SourceFile::new(found.path.clone(), text);
        let parsed = if found.path.file_name().is_some_and(|n| n == ".tool-versions") {
            tool_versions::parse_tool_versions(source)?
        } else {
            let ctx = TemplateContext { config_root: &found.config_root, env: &opts.env };
            file::parse_mise_toml(source, &ctx)?
        };
        config.merge_file(parsed, &mut backend_aliases, &mut version_aliases);
        config.files.push(found);
    }
    config.apply_aliases(&backend_aliases, &version_aliases)?;
    Ok(config)
}

impl MiseConfig {
    fn merge_file(
        &mut self,
        parsed: ConfigFile,
        backend_aliases: &mut BTreeMap<String, Spanned<String>>,
        version_aliases: &mut BTreeMap<String, BTreeMap<String, Spanned<String>>>,
    ) {
        self.overlay_tools(parsed.tools);
        self.env.extend(parsed.env);
        self.settings.extend(parsed.settings);
        backend_aliases.extend(parsed.backend_aliases);
        for (tool, aliases) in parsed.version_aliases {
            version_aliases.entry(tool).or_default().extend(aliases);
        }
        self.min_version.extend(parsed.min_version);
    }

    /// Puts `tools` over the current ones: an entry replaces any earlier entry of the same
    /// tool (`.sbx.toml` uses this to win over the mise files).
    pub fn overlay_tools(&mut self, tools: Vec<ToolEntry>) {
        for entry in tools {
            let name = entry.id.display_name().to_string();
            let shadowed = match self.tools.remove(&name) {
                Some(old) => {
                    let mut s = old.shadowed;
                    s.push(old.entry.origin);
                    s
                }
                None => Vec::new(),
            };
            self.tools.insert(name, ConfiguredTool { entry, shadowed });
        }
    }

    fn apply_aliases(
        &mut self,
        backend_aliases: &BTreeMap<String, Spanned<String>>,
        version_aliases: &BTreeMap<String, BTreeMap<String, Spanned<String>>>,
    ) -> Result<(), ConfigError> {
        for (name, tool) in self.tools.iter_mut() {
            if let Some(target) = backend_aliases.get(name).or_else(|| backend_aliases.get(&tool.entry.id.key)) {
                let backend = BackendRef::parse(&target.value)
                    .ok()
                    .flatten()
                    .or_else(|| ToolId::parse(&target.value).ok().and_then(|id| id.backends.first().cloned()));
                let Some(backend) = backend else {
                    return Err(ConfigError::at(
                        &target.origin,
                        format!("tool alias `{name}` points at `{}`, which names no backend", target.value),
                        "not a backend",
                        Some("write a full backend name such as `core:node` or `github:owner/repo`".into()),
                    ));
                };
                tool.entry.id.backends = vec![backend];
            }
            if let Some(aliases) = version_aliases.get(name) {
                for v in tool.entry.versions.iter_mut() {
                    if let VersionRequest::Version(raw) = &v.request
                        && let Some(target) = aliases.get(raw)
                    {
                        v.request = VersionRequest::parse(&target.value).map_err(|e| {
                            ConfigError::at(&target.origin, format!("invalid version alias: {e}"), "this alias", None)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The top config file: the highest-precedence local file that is not a `.local`
    /// variant, or else any local file. `sbx.lock` is written next to it.
    pub fn top_file(&self) -> Option<&PathBuf> {
        let local: Vec<&FoundFile> = self.files.iter().filter(|f| f.scope == Scope::Local).collect();
        local
            .iter()
            .rev()
            .find(|f| !f.path.to_string_lossy().contains(".local."))
            .or_else(|| local.last())
            .map(|f| &f.path)
    }
}
