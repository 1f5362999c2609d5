//! Helpers shared by the end-to-end tests: run the real `sbx` binary on fixture projects with a
//! controlled environment (no host mise config, no host HOME).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `fixtures/projects/<name>`.
pub fn project(name: &str) -> PathBuf {
    repo_root().join("fixtures/projects").join(name)
}

/// An `sbx` command with a clean environment: HOME is an empty temp dir, nothing above
/// `fixtures/projects` is read, no color.
pub fn sbx(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sbx"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MISE_CEILING_PATHS", repo_root().join("fixtures/projects"))
        .env("NO_COLOR", "1");
    cmd
}

/// Replaces the machine-specific repository path so snapshots are stable.
pub fn redact(text: &str) -> String {
    text.replace(&repo_root().display().to_string(), "[ROOT]")
}

/// A temp project with `node = "22"` in its mise.toml, its own home and cache dirs, and a
/// fixture server serving the node distribution: the starting point of the build and verify
/// tests (which add their own `.sbx.toml`).
pub struct NodeProject {
    /// Holds everything below; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The project folder.
    pub project: PathBuf,
    /// An empty HOME.
    pub home: PathBuf,
    /// `SBX_CACHE_DIR`.
    pub cache: PathBuf,
    /// The recorded upstreams.
    pub server: sbx_fixtures::FixtureServer,
}

impl NodeProject {
    /// The project, with `.sbx.toml` written by `sbx_toml` (given the server, for mirror URLs).
    pub fn new(sbx_toml: impl FnOnce(&sbx_fixtures::FixtureServer) -> String) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let server = sbx_fixtures::FixtureServer::start_default().unwrap();
        let project = tmp.path().join("project");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(project.join("mise.toml"), "[tools]\nnode = \"22\"\n").unwrap();
        std::fs::write(project.join(".sbx.toml"), sbx_toml(&server)).unwrap();
        let cache = tmp.path().join("cache");
        Self { tmp, project, home, cache, server }
    }
}
