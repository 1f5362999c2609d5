//! `runtime = "docker-sbx"`: `sbx start` through Docker Sandboxes' own CLI. This file only maps
//! the project's settings onto [`sbx_sandbox::docker_sbx::Request`]; deciding and running the
//! commands is the library's ([`sbx_sandbox::docker_sbx::Plan`]).

use std::path::PathBuf;

use miette::miette;
use sbx_sandbox::ExtraWorkspace;
use sbx_sandbox::docker_sbx::plan::ServiceSecret;
use sbx_sandbox::docker_sbx::{self, DockerSbxError, Plan, Preset, Request, Template};

use crate::project::Project;
use crate::sbx_toml::{NetworkPolicy, SecretSource};

/// The Docker service each required variable stands for: `[secrets]` first, then Docker's table.
fn services(project: &Project) -> Result<Vec<ServiceSecret>, DockerSbxError> {
    let s = &project.sbx.sandbox;
    let mut out = Vec::new();
    for var in &s.required_secrets {
        let from_toml = project.sbx.secrets.iter().find_map(|(service, source)| match &source.value {
            SecretSource::Env(v) if *v == var.value => Some(service.clone()),
            _ => None,
        });
        let service =
            from_toml.or_else(|| docker_sbx::service_for_variable(&var.value).map(String::from)).ok_or_else(|| {
                DockerSbxError::UnknownService { variable: var.value.clone(), origin: var.origin.to_string() }
            })?;
        out.push(ServiceSecret { service, variable: var.value.clone() });
    }
    Ok(out)
}

/// Builds the request for sandbox `name` of `project`, with `command` as the agent's arguments.
pub fn request(project: &Project, name: &str, command: &[String]) -> miette::Result<Request> {
    let s = &project.sbx.sandbox;
    let this = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sbx"));
    let path = project.env.get("PATH").map(std::ffi::OsString::from);
    let cli = docker_sbx::find_cli(s.docker_sbx.value.as_deref(), path.as_deref(), &this)?;
    let template = match &s.template.value {
        Some(t) => Template::Existing(t.clone()),
        None if project.image_dir().join("index.json").is_file() => Template::Layout(project.image_dir()),
        None => {
            return Err(miette!(
                code = "sbx::docker_sbx::no_image",
                help = "run `sbx build` (its image becomes the sandbox's template), or name an existing Docker \
                        Sandboxes template with `template = \"…\"` in [sandbox]",
                "the project has no image yet (.sbx/image) and no template"
            ));
        }
    };
    let extra_workspaces = s
        .extra_workspaces
        .iter()
        .map(|e| {
            let path = if e.value.path.is_absolute() { e.value.path.clone() } else { project.root.join(&e.value.path) };
            ExtraWorkspace { path, writable: e.value.writable }
        })
        .collect();
    let preset = match s.network_policy.value {
        NetworkPolicy::AllowAll => Preset::AllowAll,
        NetworkPolicy::Balanced => Preset::Balanced,
        NetworkPolicy::DenyAll => Preset::DenyAll,
    };
    let sandboxes = sbx_sandbox::Sandboxes::default();
    Ok(Request {
        cli,
        name: name.to_string(),
        agent: s.agent.value.map_or("shell", |a| a.as_str()).to_string(),
        workspace: project.root.clone(),
        extra_workspaces,
        branch: s.branch.value.clone(),
        template,
        preset,
        // sbx-proxy does not export its balanced list yet: under a deny-all Docker default,
        // `balanced` then allows only `allowed_domains` (stricter, never wider).
        balanced_domains: Vec::new(),
        allowed_domains: s.allowed_domains.iter().map(|d| d.value.clone()).collect(),
        blocked_domains: s.blocked_domains.iter().map(|d| d.value.clone()).collect(),
        services: services(project)?,
        agent_args: command.to_vec(),
        record: sandboxes.store().dir(name).join("docker-sbx.json"),
        cache_dir: sbx_sandbox::rootfs::default_cache_dir(),
    })
}

/// `sbx start` on Docker Sandboxes: prints the commands (`dry_run`) or runs them; the exit code
/// is `sbx run`'s.
pub fn start(project: &Project, name: &str, command: &[String], dry_run: bool) -> miette::Result<i32> {
    let req = request(project, name, command)?;
    let plan = Plan::compute(&req)?;
    for note in &plan.notes {
        eprintln!("sbx: note: {note}");
    }
    if dry_run {
        for line in plan.render() {
            println!("{line}");
        }
        eprintln!("sbx: --dry-run: the commands above would run (after the read-only `secret ls`, `ls`, `policy ls`)");
        return Ok(0);
    }
    Ok(plan.execute()?)
}
