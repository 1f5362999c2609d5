//! The `sbx` binary the tasks run: `$SBX_BIN`, else this workspace's, built first.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// `$SBX_BIN` if set, else builds `sbx` (`release` or debug profile) and returns its path.
pub fn sbx_binary(release: bool) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SBX_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let root = workspace_root()?;
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet", "--locked", "-p", "sbx"]).current_dir(&root);
    if release {
        build.arg("--release");
    }
    if !build.status()?.success() {
        bail!("building sbx failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target.join(if release { "release" } else { "debug" }).join("sbx"))
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf())
}
