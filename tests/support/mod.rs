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
