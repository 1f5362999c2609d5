//! What `sbx start` decides before anything runs: the sandbox spec (workspace or worktree,
//! extra folders, the agent's command and config dir, the environment), the secrets, and the
//! proxy that is the sandbox's only way out.
//!
//! **Proxy lifetime.** The proxy lives exactly as long as its sandbox, in the process that owns
//! the sandbox: an attached `sbx start` runs it in-process and stops it when the sandbox exits;
//! `sbx start --detach` re-executes itself as a *supervisor* (`sbx start --supervise`, hidden, in
//! a session of its own) that runs the proxy and the sandbox and exits when the sandbox does.
//! The supervisor gets its spec and the secrets through a pipe (never argv, never a file);
//! `sbx stop` ends the sandbox, which ends the supervisor and with it the proxy. If the
//! supervisor is killed, the sandbox loses its only way out (and bwrap sandboxes die with it).

pub mod docker_sbx;
pub mod image;
pub mod proxy;
pub mod secrets;
pub mod supervisor;
pub mod worktree;

use std::path::{Path, PathBuf};

use miette::miette;
use sbx_sandbox::{ExtraWorkspace, HomeMount, SandboxSpec, Sandboxes};

use crate::agents::{self, AgentPreset};
use crate::project::Project;
use secrets::ResolvedSecret;
use worktree::Worktree;

/// Everything decided for one start.
#[derive(Debug)]
pub struct Prepared {
    /// The sandbox spec (proxy socket and CA are set when the proxy runs).
    pub spec: SandboxSpec,
    /// The required secrets and injected credentials, read on the host.
    pub secrets: Vec<ResolvedSecret>,
    /// Injectable `[secrets]` services left out because their source is not available.
    pub skipped_secrets: Vec<String>,
    /// The worktree, when `branch` is set.
    pub worktree: Option<Worktree>,
    /// Settings files copied from the host's agent config (relative paths).
    pub copied_settings: Vec<String>,
}

/// Options of `prepare` that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The sandbox name.
    pub name: String,
    /// The command (empty: the agent's command, else the image's default).
    pub command: Vec<String>,
    /// The image layout.
    pub image: PathBuf,
    /// Copy the agent's settings files from the host.
    pub copy_settings: bool,
    /// Only describe: no worktree is created, nothing is copied.
    pub dry_run: bool,
}

/// Decides the spec for `req` on `project`.
pub fn prepare(project: &Project, sandboxes: &Sandboxes, req: &Request) -> miette::Result<Prepared> {
    let secrets::Resolved { secrets, skipped: skipped_secrets } = secrets::resolve(project)?;
    let s = &project.sbx.sandbox;
    let state = project.state_dir().map_err(|e| miette!("cannot create {}/.sbx: {e}", project.root.display()))?;
    let worktree = match &s.branch.value {
        Some(setting) => {
            let branch = worktree::branch_name(setting, &req.name);
            if req.dry_run {
                let path = state.join("worktrees").join(branch.replace('/', "_"));
                Some(Worktree { path, branch, git_dir: PathBuf::new(), read_only: Vec::new() })
            } else {
                Some(worktree::ensure(&project.root, &state, &branch)?)
            }
        }
        None => None,
    };
    let workspace = worktree.as_ref().map_or_else(|| project.root.clone(), |w| w.path.clone());
    let mut spec = SandboxSpec::new(&req.name, &req.image, workspace);
    if let Some(w) = worktree.as_ref().filter(|w| !w.git_dir.as_os_str().is_empty()) {
        spec.extra_workspaces.push(ExtraWorkspace { path: w.git_dir.clone(), writable: true });
        for p in &w.read_only {
            spec.extra_workspaces.push(ExtraWorkspace { path: p.clone(), writable: false });
        }
    }
    for extra in &s.extra_workspaces {
        let path = if extra.value.path.is_absolute() {
            extra.value.path.clone()
        } else {
            project.root.join(&extra.value.path)
        };
        if !path.exists() {
            return Err(miette!(
                help = "create the folder or remove it from `extra_workspaces`",
                "extra workspace {} ({}) does not exist",
                path.display(),
                extra.origin
            ));
        }
        spec.extra_workspaces.push(ExtraWorkspace { path, writable: extra.value.writable });
    }
    let preset = s.agent.value.map(agents::preset);
    spec.command = if !req.command.is_empty() {
        req.command.clone()
    } else {
        preset.map(|p| p.command.iter().map(|c| c.to_string()).collect()).unwrap_or_default()
    };
    for secret in &secrets {
        spec.env.insert(secret.name.clone(), secret.sandbox_value());
    }
    let mut copied_settings = Vec::new();
    if let Some(preset) = preset
        && let Some(dir) = preset.config_dir
    {
        let source = sandboxes.store().dir(&req.name).join("home").join(dir);
        if req.copy_settings {
            copied_settings = settings_to_copy(project, preset);
            if !req.dry_run {
                copy_settings(project, preset, &source)?;
            }
        }
        if !req.dry_run {
            std::fs::create_dir_all(&source).map_err(|e| miette!("cannot create {}: {e}", source.display()))?;
        }
        spec.home_mounts.push(HomeMount { source, path: PathBuf::from(dir) });
    }
    Ok(Prepared { spec, secrets, skipped_secrets, worktree, copied_settings })
}

fn host_config_dir(project: &Project, preset: &AgentPreset) -> Option<PathBuf> {
    let home = project.env.get("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(home).join(preset.config_dir?))
}

/// The allow-listed settings files the host has for `preset`.
fn settings_to_copy(project: &Project, preset: &AgentPreset) -> Vec<String> {
    let Some(dir) = host_config_dir(project, preset) else { return Vec::new() };
    preset.settings.iter().filter(|f| dir.join(f.path).is_file()).map(|f| f.path.to_string()).collect()
}

/// Copies the allow-listed settings files into `dest`, dropping keys that can carry credentials.
fn copy_settings(project: &Project, preset: &AgentPreset, dest: &Path) -> miette::Result<()> {
    let Some(dir) = host_config_dir(project, preset) else { return Ok(()) };
    std::fs::create_dir_all(dest).map_err(|e| miette!("cannot create {}: {e}", dest.display()))?;
    for file in preset.settings {
        let from = dir.join(file.path);
        // Regular files only: a symlink could point at a credential file.
        if !std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let text = std::fs::read_to_string(&from).map_err(|e| miette!("cannot read {}: {e}", from.display()))?;
        let filtered = agents::filter_settings(&text, file.strip_keys).ok_or_else(|| {
            miette!(
                help = "fix the file, or start without --agent-settings",
                "{} is not a JSON object; not copying it unfiltered",
                from.display()
            )
        })?;
        let to = dest.join(file.path);
        std::fs::write(&to, filtered).map_err(|e| miette!("cannot write {}: {e}", to.display()))?;
    }
    Ok(())
}
