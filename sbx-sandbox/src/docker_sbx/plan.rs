//! Deciding and running the Docker `sbx` commands for one start. [`Plan::compute`] only runs
//! read-only commands (`secret ls`, `ls`, `policy ls`); [`Plan::render`] prints the commands
//! that would change something (for `--dry-run`); [`Plan::execute`] runs them and then
//! `sbx run`, returning its exit code.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DockerSbxError;
use super::parse::{self, RuleScope};
use crate::runtime::engine_args::render;
use crate::runtime::engine_image;
use crate::spec::ExtraWorkspace;

/// The project's network preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Everything allowed.
    AllowAll,
    /// Agents' APIs, code hosts, registries.
    Balanced,
    /// Nothing unless allowed.
    DenyAll,
}

impl Preset {
    /// Docker's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::AllowAll => "allow-all",
            Preset::Balanced => "balanced",
            Preset::DenyAll => "deny-all",
        }
    }
}

/// Where the sandbox's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Docker's default image for the agent.
    AgentDefault,
    /// A template Docker already has (`[sandbox] template`).
    Existing(String),
    /// The OCI layout `sbx build` wrote: converted and loaded with `sbx template load`.
    Layout(PathBuf),
}

/// A required credential: Docker's service and the variable it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSecret {
    /// Docker's service name (`anthropic`).
    pub service: String,
    /// The variable `.sbx.toml` requires (`ANTHROPIC_API_KEY`).
    pub variable: String,
}

/// Everything the CLI decided for one Docker sandbox.
#[derive(Debug, Clone)]
pub struct Request {
    /// Docker's `sbx` executable.
    pub cli: PathBuf,
    /// The sandbox name.
    pub name: String,
    /// Docker's agent (`claude`, `codex`, `gemini`, `opencode`, `shell`).
    pub agent: String,
    /// The project (or its worktree, when sbx made one).
    pub workspace: PathBuf,
    /// More folders (`:ro` unless writable).
    pub extra_workspaces: Vec<ExtraWorkspace>,
    /// `--branch` for Docker's own worktree.
    pub branch: Option<String>,
    /// The image.
    pub template: Template,
    /// The network preset.
    pub preset: Preset,
    /// Domains of sbx's balanced preset (allowed per sandbox when Docker's default is deny-all).
    pub balanced_domains: Vec<String>,
    /// `allowed_domains`.
    pub allowed_domains: Vec<String>,
    /// `blocked_domains`.
    pub blocked_domains: Vec<String>,
    /// Required credentials.
    pub services: Vec<ServiceSecret>,
    /// Arguments for the agent (after `--`).
    pub agent_args: Vec<String>,
    /// sbx's record of what it set up for this sandbox (JSON).
    pub record: PathBuf,
    /// sbx's cache dir (template archives go to `engine-images/`).
    pub cache_dir: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    template: Option<String>,
    rules: Vec<(String, String)>,
}

/// One command that changes Docker's state.
#[derive(Debug, Clone)]
pub struct Step {
    /// Arguments after the CLI.
    pub args: Vec<OsString>,
    /// Why it runs.
    pub why: String,
    /// The layout to convert into the archive this step loads.
    convert: Option<PathBuf>,
}

/// The decided commands.
#[derive(Debug, Clone)]
pub struct Plan {
    cli: PathBuf,
    /// The read-only commands that were run to decide.
    pub queries: Vec<String>,
    /// The commands that change something, in order.
    pub steps: Vec<Step>,
    /// The final `sbx run`.
    pub run: Step,
    /// Things the user should know (org governance, …).
    pub notes: Vec<String>,
    record: Record,
    record_path: PathBuf,
    cache_dir: PathBuf,
}

fn query(cli: &Path, args: &[&str], log: &mut Vec<String>) -> Result<String, DockerSbxError> {
    let cmdline = render(&cli.to_string_lossy(), &args.iter().map(OsString::from).collect::<Vec<_>>());
    log.push(cmdline.clone());
    let out = Command::new(cli).args(args).stdin(Stdio::null()).output().map_err(|e| DockerSbxError::Command {
        command: cmdline.clone(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DockerSbxError::Command {
            command: cmdline,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(args: &[&str], why: &str) -> Step {
    Step { args: args.iter().map(OsString::from).collect(), why: why.into(), convert: None }
}

/// Docker's global default, read from its global network rules.
fn global_preset(rows: &[parse::PolicyRow]) -> Preset {
    let global: Vec<_> = rows
        .iter()
        .filter(|r| r.scope == RuleScope::Global && r.kind == "network" && r.decision == "allow")
        .filter(|r| r.status.as_deref() != Some("inactive"))
        .collect();
    if global.iter().any(|r| r.resources.iter().any(|x| x == "**")) {
        Preset::AllowAll
    } else if global.iter().any(|r| r.name.starts_with("default-") || r.name.contains("balanced")) {
        Preset::Balanced
    } else {
        Preset::DenyAll
    }
}

fn desired_rules(req: &Request, global: Preset) -> Result<Vec<(String, String)>, DockerSbxError> {
    let (mut allow, mut deny): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let cli = req.cli.display();
    let refuse =
        |help: String| DockerSbxError::Policy { wanted: req.preset.name().into(), global: global.name().into(), help };
    match (req.preset, global) {
        (Preset::AllowAll, Preset::AllowAll) | (Preset::Balanced, Preset::Balanced) => {}
        (Preset::DenyAll, Preset::DenyAll) => {}
        (Preset::AllowAll, _) => allow.push("**".into()),
        (Preset::Balanced, Preset::DenyAll) => allow.extend(req.balanced_domains.iter().cloned()),
        (Preset::DenyAll, _) if req.allowed_domains.is_empty() => deny.push("**".into()),
        (Preset::DenyAll, _) => {
            return Err(refuse(format!(
                "a sandbox-scoped `deny **` would also block allowed_domains (deny beats allow in Docker). Drop \
                 allowed_domains, or make Docker's default deny-all for every sandbox: `{cli} policy reset` then \
                 `{cli} policy set-default deny-all`"
            )));
        }
        (Preset::Balanced, Preset::AllowAll) => {
            return Err(refuse(format!(
                "sandbox-scoped rules cannot narrow an allow-all default to the balanced list. Use \
                 network_policy = \"deny-all\" here, or change Docker's default for every sandbox: `{cli} policy \
                 reset` then `{cli} policy set-default balanced`"
            )));
        }
    }
    allow.extend(req.allowed_domains.iter().cloned());
    deny.extend(req.blocked_domains.iter().cloned());
    let mut rules: Vec<(String, String)> = allow
        .into_iter()
        .map(|r| ("allow".to_string(), r))
        .chain(deny.into_iter().map(|r| ("deny".to_string(), r)))
        .collect();
    rules.sort();
    rules.dedup();
    Ok(rules)
}

fn fingerprint(req: &Request, template: Option<&str>) -> String {
    let extras: Vec<String> =
        req.extra_workspaces.iter().map(|e| format!("{}:{}", e.path.display(), e.writable)).collect();
    let text = serde_json::json!([req.agent, template, req.workspace, extras, req.branch]).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn create_args(req: &Request, template: Option<&str>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["create".into(), "--name".into(), req.name.clone().into()];
    if let Some(b) = &req.branch {
        a.extend(["--branch".into(), b.into()]);
    }
    if let Some(t) = template {
        a.extend(["--template".into(), t.into()]);
    }
    a.push(req.agent.clone().into());
    a.push(req.workspace.clone().into());
    for e in &req.extra_workspaces {
        let mut p = e.path.clone().into_os_string();
        if !e.writable {
            p.push(":ro");
        }
        a.push(p);
    }
    a
}

impl Plan {
    /// Decides the commands for `req`, running only Docker's read-only commands. Missing
    /// secrets, a sandbox of that name that sbx did not create, and a preset that cannot be
    /// expressed per sandbox are errors here, before anything changes.
    pub fn compute(req: &Request) -> Result<Plan, DockerSbxError> {
        let mut queries = Vec::new();
        let cli = &req.cli;
        let cmd = |args: &[&str]| render(&cli.to_string_lossy(), &args.iter().map(OsString::from).collect::<Vec<_>>());
        // 1. Secrets, before anything is created.
        let secrets_out = query(cli, &["secret", "ls"], &mut queries)?;
        let rows = parse::secrets(&secrets_out)
            .map_err(|output| DockerSbxError::Output { command: cmd(&["secret", "ls"]), output })?;
        let missing: Vec<&ServiceSecret> = req
            .services
            .iter()
            .filter(|s| {
                !rows.iter().any(|r| {
                    r.service == s.service
                        && (r.scope == "(global)" || r.scope == req.name)
                        && r.kind.as_deref().is_none_or(|k| k == "service")
                })
            })
            .collect();
        if !missing.is_empty() {
            let commands = missing
                .iter()
                .map(|s| {
                    format!(
                        "  {}   # prompts for the value of {}; or: echo \"${}\" | {}",
                        cmd(&["secret", "set", "-g", &s.service]),
                        s.variable,
                        s.variable,
                        cmd(&["secret", "set", "-g", &s.service])
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            return Err(DockerSbxError::MissingSecrets {
                services: missing.iter().map(|s| s.service.clone()).collect(),
                commands: format!("store the credential in Docker's secret store, then start again:\n{commands}"),
            });
        }
        // 2. The sandbox and sbx's record of it.
        let record: Option<Record> = std::fs::read(&req.record).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let ls_out = query(cli, &["ls"], &mut queries)?;
        let existing =
            parse::sandboxes(&ls_out).map_err(|output| DockerSbxError::Output { command: cmd(&["ls"]), output })?;
        let exists = existing.iter().any(|n| n == &req.name);
        let template = match &req.template {
            Template::AgentDefault => None,
            Template::Existing(t) => Some(t.clone()),
            Template::Layout(layout) => Some(engine_image::repo_tag(&crate::oci::resolve(layout)?.manifest_digest)),
        };
        let fp = fingerprint(req, template.as_deref());
        let mut steps = Vec::new();
        let mut notes = Vec::new();
        let recreate = match (&record, exists) {
            (None, true) => {
                return Err(DockerSbxError::Command {
                    command: cmd(&["ls"]),
                    status: "refused".into(),
                    stderr: format!(
                        "a Docker sandbox named `{}` exists that sbx did not create; remove it (`{}`) or start with \
                         another --name",
                        req.name,
                        cmd(&["rm", &req.name])
                    ),
                });
            }
            (Some(r), true) => r.fingerprint != fp,
            (_, false) => true,
        };
        let mut new_record =
            Record { fingerprint: fp, template: record.as_ref().and_then(|r| r.template.clone()), rules: Vec::new() };
        if let (Template::Layout(layout), Some(tag)) = (&req.template, &template)
            && (new_record.template.as_deref() != Some(tag.as_str()) || recreate)
        {
            let hex = tag.trim_start_matches("sbx-image:");
            let _ = hex;
            let image = crate::oci::resolve(layout)?;
            let file_hex = image.manifest_digest.split_once(':').map_or(image.manifest_digest.as_str(), |(_, h)| h);
            let archive = req.cache_dir.join("engine-images").join(format!("{file_hex}.tar"));
            let mut s = step(&["template", "load"], "load the built image as a template");
            s.args.push(archive.into_os_string());
            s.convert = Some(layout.clone());
            steps.push(s);
            new_record.template = Some(tag.clone());
        }
        if exists && recreate {
            steps.push(step(&["rm", "--force", &req.name], "the sandbox was created with other settings"));
        }
        if recreate {
            steps.push(Step {
                args: create_args(req, template.as_deref()),
                why: "create the sandbox".into(),
                convert: None,
            });
        }
        // 3. Network rules scoped to this sandbox.
        let policy_out = query(cli, &["policy", "ls"], &mut queries)?;
        if parse::governance_active(&policy_out) {
            notes.push(
                "your organization manages Docker Sandboxes' policy: local rules (including the ones sbx adds for \
                 this sandbox) have no effect"
                    .into(),
            );
        }
        let rows = parse::policies(&policy_out)
            .map_err(|output| DockerSbxError::Output { command: cmd(&["policy", "ls"]), output })?;
        let desired = desired_rules(req, global_preset(&rows))?;
        let recorded: Vec<(String, String)> = record.as_ref().map(|r| r.rules.clone()).unwrap_or_default();
        // The rules of this sandbox that sbx added (every resource is one sbx recorded).
        let ours: Vec<&parse::PolicyRow> = rows
            .iter()
            .filter(|r| r.scope == RuleScope::Sandbox(req.name.clone()) && r.kind == "network")
            .filter(|r| r.resources.iter().all(|x| recorded.contains(&(r.decision.clone(), x.clone()))))
            .collect();
        let mut present: Vec<(String, String)> =
            ours.iter().flat_map(|r| r.resources.iter().map(|x| (r.decision.clone(), x.clone()))).collect();
        present.sort();
        present.dedup();
        if present != desired {
            for r in &ours {
                let id = r.name.strip_prefix("local:").unwrap_or(&r.name);
                steps.push(step(&["policy", "rm", "network", "--id", id], "remove a rule sbx added earlier"));
            }
            for decision in ["allow", "deny"] {
                let list: Vec<&str> = desired.iter().filter(|(d, _)| d == decision).map(|(_, r)| r.as_str()).collect();
                if !list.is_empty() {
                    steps.push(step(
                        &["policy", decision, "network", "--sandbox", &req.name, &list.join(",")],
                        "network rule scoped to this sandbox",
                    ));
                }
            }
        }
        new_record.rules = desired;
        let mut run = step(&["run", &req.name], "attach to the agent");
        if !req.agent_args.is_empty() {
            run.args.push("--".into());
            run.args.extend(req.agent_args.iter().map(OsString::from));
        }
        Ok(Plan {
            cli: req.cli.clone(),
            queries,
            steps,
            run,
            notes,
            record: new_record,
            record_path: req.record.clone(),
            cache_dir: req.cache_dir.clone(),
        })
    }

    /// The commands that would run, one shell-quoted line each (the steps, then `sbx run`).
    pub fn render(&self) -> Vec<String> {
        let cli = self.cli.to_string_lossy();
        self.steps.iter().chain(std::iter::once(&self.run)).map(|s| render(&cli, &s.args)).collect()
    }

    /// Runs the steps, records what sbx set up, then runs `sbx run` attached to this terminal
    /// and returns its exit code (128 + signal when it was killed).
    pub fn execute(&self) -> Result<i32, DockerSbxError> {
        let cli = self.cli.to_string_lossy();
        for s in &self.steps {
            if let Some(layout) = &s.convert {
                engine_image::write_archive(layout, &self.cache_dir.join("engine-images"))?;
            }
            let out = Command::new(&self.cli).args(&s.args).stdin(Stdio::null()).output().map_err(|e| {
                DockerSbxError::Command {
                    command: render(&cli, &s.args),
                    status: "not started".into(),
                    stderr: e.to_string(),
                }
            })?;
            if !out.status.success() {
                return Err(DockerSbxError::Command {
                    command: render(&cli, &s.args),
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            if let Some(layout) = &s.convert
                && let Some(done) = engine_image::existing_archive(layout, &self.cache_dir.join("engine-images"))
            {
                // Docker has its own copy now.
                let _ = std::fs::remove_file(&done.path);
            }
        }
        if let Some(dir) = self.record_path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DockerSbxError::Io {
                what: "creating the Docker sandbox record",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let json = serde_json::to_vec_pretty(&self.record).unwrap_or_default();
        std::fs::write(&self.record_path, json).map_err(|source| DockerSbxError::Io {
            what: "writing the Docker sandbox record",
            path: self.record_path.clone(),
            source,
        })?;
        let status = Command::new(&self.cli).args(&self.run.args).status().map_err(|e| DockerSbxError::Command {
            command: render(&cli, &self.run.args),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
    }
}
