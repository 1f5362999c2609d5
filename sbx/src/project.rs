//! A project: its root directory, the merged mise configuration and `.sbx.toml`.
//!
//! Merge rule: `.sbx.toml`'s `[tools]` win over the mise files for the same tool (for the
//! sandbox only; the host's mise never reads `.sbx.toml`). When `[sandbox] agent` names an agent
//! carried by an npm package, that package is an extra sandbox tool (`npm:<package>` = `latest`,
//! attributed to the `agent` line) unless the configuration already lists it, so `sbx lock` pins
//! it and `sbx build` installs it like any other tool. `[image] mise = true` adds the mise binary
//! the same way ([`MISE_NPM_PACKAGE`], attributed to the `mise` line).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sbx_mise::config::{self, DiscoverOptions, MiseConfig, ToolEntry, ToolOptions, ToolVersion};
use sbx_mise::{ConfigError, Origin, ToolId, VersionRequest};

use crate::sbx_toml::{self, SbxToml};

/// Everything the commands read about a project.
pub struct Project {
    /// The project directory (holds `.sbx.toml` and `sbx.lock`).
    pub root: PathBuf,
    /// mise's merged configuration with `.sbx.toml`'s `[tools]` on top.
    pub mise: MiseConfig,
    /// `.sbx.toml` (defaults when the project has none).
    pub sbx: SbxToml,
    /// The environment the configuration was read with.
    pub env: BTreeMap<String, String>,
}

impl Project {
    /// Finds the project for `dir` and reads its configuration.
    ///
    /// The root is the nearest directory at or above `dir` holding `.sbx.toml`; without one,
    /// `dir` itself.
    pub fn load(dir: &Path, include_global: bool, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let dir = std::path::absolute(dir).map_err(|source| ConfigError::Io { path: dir.to_path_buf(), source })?;
        let root = dir.ancestors().find(|d| d.join(sbx_toml::FILE_NAME).is_file()).unwrap_or(&dir).to_path_buf();
        let sbx = sbx_toml::load(&root, &env)?;
        let opts = DiscoverOptions { project_dir: root.clone(), env: env.clone(), include_global };
        let mut mise = config::load(&opts)?;
        mise.overlay_tools(sbx.tools.clone());
        if let Some(entry) = agent_tool(&sbx, &mise) {
            mise.overlay_tools(vec![entry]);
        }
        if let Some(entry) = mise_tool(&sbx, &mise) {
            mise.overlay_tools(vec![entry]);
        }
        Ok(Self { root, mise, sbx, env })
    }

    /// The sandbox's name when `--name` is not given: the project folder's name and a short
    /// hash of its path (two checkouts of one repository get different sandboxes).
    pub fn default_sandbox_name(&self) -> String {
        use sha2::Digest;
        let base: String = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .take(40)
            .collect();
        let base = base.trim_matches('-');
        let hash = hex::encode(sha2::Sha256::digest(self.root.to_string_lossy().as_bytes()));
        if base.is_empty() { format!("sbx-{}", &hash[..8]) } else { format!("{base}-{}", &hash[..8]) }
    }

    /// The project's own state directory (`.sbx/`: built images, lock files), created on
    /// first use with a `.gitignore` so it never shows up in version control.
    pub fn state_dir(&self) -> std::io::Result<PathBuf> {
        let dir = self.root.join(".sbx");
        std::fs::create_dir_all(&dir)?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            sbx_mise::atomic::write_atomically(&ignore, b"# Created by sbx: build state, never committed.\n*\n")?;
        }
        Ok(dir)
    }

    /// Where `sbx.lock` lives.
    pub fn lockfile_path(&self) -> PathBuf {
        self.root.join("sbx.lock")
    }

    /// Where `sbx build` writes the project's image by default (an OCI image layout in
    /// `.sbx/image`); `sbx verify` and `sbx start` read it from there.
    pub fn image_dir(&self) -> PathBuf {
        self.root.join(".sbx").join("image")
    }
}

/// The agent's npm package as a tool entry, unless the configuration lists it already.
fn agent_tool(sbx: &SbxToml, mise: &MiseConfig) -> Option<ToolEntry> {
    let agent = sbx.sandbox.agent.value?;
    let origin = sbx.sandbox.agent.origin.clone()?;
    let name = crate::agents::preset(agent).tool_name()?;
    latest_tool(&name, origin, mise)
}

/// The npm package carrying the mise binary (`[image] mise = true`): a wrapper whose
/// per-platform package (`@jdxcode/mise-linux-x64`, …) holds `bin/mise`; `sbx build` places
/// that binary, so it runs without Node.js.
pub const MISE_NPM_PACKAGE: &str = "@jdxcode/mise";

/// mise's npm package as a tool entry when `[image] mise = true`, unless already listed.
fn mise_tool(sbx: &SbxToml, mise: &MiseConfig) -> Option<ToolEntry> {
    if !sbx.image.mise.value {
        return None;
    }
    let origin = sbx.image.mise.origin.clone()?;
    latest_tool(&format!("npm:{MISE_NPM_PACKAGE}"), origin, mise)
}

/// Tool `name` at its latest version, requested at `origin`, unless the mise config lists it.
fn latest_tool(name: &str, origin: Origin, mise: &MiseConfig) -> Option<ToolEntry> {
    if mise.tools.contains_key(name) {
        return None;
    }
    let id = ToolId::parse(name).ok()?;
    let version =
        ToolVersion { request: VersionRequest::Latest, origin: origin.clone(), options: ToolOptions::default() };
    Some(ToolEntry { id, origin, versions: vec![version] })
}
