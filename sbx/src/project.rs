//! A project: its root directory, the merged mise configuration and `.sbx.toml`.
//!
//! Merge rule: `.sbx.toml`'s `[tools]` win over the mise files for the same tool (for the
//! sandbox only; the host's mise never reads `.sbx.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sbx_mise::ConfigError;
use sbx_mise::config::{self, DiscoverOptions, MiseConfig};

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
        Ok(Self { root, mise, sbx, env })
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
