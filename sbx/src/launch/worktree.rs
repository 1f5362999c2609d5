//! `branch = "auto" | NAME`: the agent works on a git worktree of its own, so its edits stay on
//! a branch and the user's checkout is untouched.
//!
//! The worktree lives in the project's `.sbx/worktrees/<branch>` (ignored by git); `auto` means
//! the branch `sbx/<sandbox name>`. An existing worktree of that branch is reused. Inside the
//! sandbox the worktree is the workspace; the repository's git directory is mounted writable
//! (commits need its object store) except `hooks/` and `config`, which stay read-only so the
//! agent cannot plant code that the host's git would run later.

use std::path::{Path, PathBuf};
use std::process::Command;

use miette::miette;

/// A prepared worktree.
#[derive(Debug, Clone)]
pub struct Worktree {
    /// The worktree directory (the sandbox's workspace).
    pub path: PathBuf,
    /// The branch checked out in it.
    pub branch: String,
    /// The repository's common git directory (mounted writable).
    pub git_dir: PathBuf,
    /// Paths inside `git_dir` mounted read-only on top (hooks, config).
    pub read_only: Vec<PathBuf>,
}

fn git(dir: &Path, args: &[&str]) -> miette::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| miette!(help = "install git, or remove `branch` from .sbx.toml", "cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(miette!(
            help = "`branch` in .sbx.toml needs the project to be a git repository with at least one commit",
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The branch for `setting` (`auto` → `sbx/<sandbox>`).
pub fn branch_name(setting: &str, sandbox: &str) -> String {
    if setting == "auto" { format!("sbx/{sandbox}") } else { setting.to_string() }
}

/// Creates (or finds) the worktree of `branch` for the repository at `root`, under `state_dir`.
pub fn ensure(root: &Path, state_dir: &Path, branch: &str) -> miette::Result<Worktree> {
    git(root, &["check-ref-format", "--branch", branch]).map_err(|_| {
        miette!(help = "use a valid git branch name, or \"auto\"", "`{branch}` is not a valid branch name")
    })?;
    let git_dir = PathBuf::from(git(root, &["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
    let slug: String = branch.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let path = state_dir.join("worktrees").join(slug);
    if path.join(".git").exists() {
        let current = git(&path, &["rev-parse", "--abbrev-ref", "HEAD"])?;
        if current != branch {
            return Err(miette!(
                help = format!("remove it with `git worktree remove {}` or pick another branch", path.display()),
                "the worktree {} has `{current}` checked out, not `{branch}`",
                path.display()
            ));
        }
    } else {
        let _ = git(root, &["worktree", "prune"]);
        std::fs::create_dir_all(path.parent().unwrap_or(state_dir))
            .map_err(|e| miette!("cannot create {}: {e}", state_dir.display()))?;
        let path_s = path.to_string_lossy().into_owned();
        let exists = git(root, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")]).is_ok();
        if exists {
            git(root, &["worktree", "add", &path_s, branch])?;
        } else {
            git(root, &["worktree", "add", "-b", branch, &path_s])?;
        }
    }
    let read_only = ["hooks", "config"].iter().map(|p| git_dir.join(p)).filter(|p| p.exists()).collect();
    Ok(Worktree { path, branch: branch.to_string(), git_dir, read_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_branch_is_per_sandbox() {
        assert_eq!(branch_name("auto", "app-1234"), "sbx/app-1234");
        assert_eq!(branch_name("feature/x", "app"), "feature/x");
    }
}
