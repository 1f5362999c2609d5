//! `sbx init`: write a commented `.sbx.toml` for the project.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, WrapErr};
use sbx_mise::config::{DiscoverOptions, discover};

use crate::cli::InitArgs;
use crate::output::Output;
use crate::sbx_toml::{self, DEFAULT_DATA_DIR};

/// An agent preset as `sbx init` describes it.
struct AgentInfo {
    name: &'static str,
    command: &'static str,
    config_dir: &'static str,
    secret_service: &'static str,
    secret_env: &'static str,
}

const AGENTS: [AgentInfo; 4] = [
    AgentInfo {
        name: "claude",
        command: "claude",
        config_dir: ".claude",
        secret_service: "anthropic",
        secret_env: "ANTHROPIC_API_KEY",
    },
    AgentInfo {
        name: "codex",
        command: "codex",
        config_dir: ".codex",
        secret_service: "openai",
        secret_env: "OPENAI_API_KEY",
    },
    AgentInfo {
        name: "gemini",
        command: "gemini",
        config_dir: ".gemini",
        secret_service: "google",
        secret_env: "GEMINI_API_KEY",
    },
    AgentInfo {
        name: "opencode",
        command: "opencode",
        config_dir: ".config/opencode",
        secret_service: "anthropic",
        secret_env: "ANTHROPIC_API_KEY",
    },
];

/// Runs `sbx init` in `dir`.
pub fn run(dir: &Path, args: &InitArgs, env: &BTreeMap<String, String>, out: Output) -> miette::Result<()> {
    let path = dir.join(sbx_toml::FILE_NAME);
    if path.exists() && !args.force {
        return Err(miette::miette!(
            help = "pass --force to overwrite it, or edit it by hand (`sbx config` shows what it sets)",
            "{} already exists",
            path.display()
        ));
    }
    let opts = DiscoverOptions { project_dir: dir.to_path_buf(), env: env.clone(), include_global: false };
    let files: Vec<PathBuf> = discover::discover(&opts).into_iter().map(|f| f.path).collect();
    let agent = match &args.agent {
        Some(a) => Some(a.clone()),
        None => detect_agent(env).map(|a| a.name.to_string()),
    };
    let text = render(dir, &files, agent.as_deref());
    // Check that what we write is what we read back, before writing anything.
    sbx_toml::parse(sbx_mise::SourceFile::new(path.clone(), text.clone()), dir, env)
        .map_err(|e| miette::miette!("internal error: the generated .sbx.toml does not parse: {e}"))?;
    sbx_mise::atomic::write_atomically(&path, text.as_bytes())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    if !out.quiet {
        eprintln!("wrote {}", path.display());
        match files.len() {
            0 => eprintln!("  no mise config found: add tools under [tools] in .sbx.toml or in a mise.toml"),
            n => eprintln!("  uses {n} mise config file(s); `sbx config` shows the merged tools"),
        }
        match &agent {
            Some(a) => eprintln!("  agent: {a}"),
            None => eprintln!("  no agent detected: set `agent` under [sandbox]"),
        }
    }
    Ok(())
}

fn detect_agent(env: &BTreeMap<String, String>) -> Option<&'static AgentInfo> {
    let path_dirs: Vec<PathBuf> = env.get("PATH").map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    let home = env.get("HOME").map(PathBuf::from);
    AGENTS
        .iter()
        .find(|a| path_dirs.iter().any(|d| d.join(a.command).is_file()))
        .or_else(|| AGENTS.iter().find(|a| home.as_ref().is_some_and(|h| h.join(a.config_dir).is_dir())))
}

fn render(dir: &Path, files: &[PathBuf], agent: Option<&str>) -> String {
    let info = agent.and_then(|a| AGENTS.iter().find(|x| x.name == a));
    let mut s = String::from("# sbx settings for this project. `sbx config` shows the merged result with origins.\n");
    if files.is_empty() {
        s += "# No mise config was found; list the sandbox's tools under [tools] below.\n";
    } else {
        s += "# Tools come from these mise files (closest wins), then from [tools] below:\n";
        for f in files {
            s += &format!("#   {}\n", f.strip_prefix(dir).unwrap_or(f).display());
        }
    }
    s += "\n[sandbox]\n";
    s += "# The agent to start: claude | codex | gemini | opencode | shell\n";
    match agent {
        Some(a) => s += &format!("agent = \"{a}\"\n"),
        None => s += "# agent = \"claude\"\n",
    }
    s += "# Network policy preset: allow-all | balanced | deny-all (aliases: open, locked-down).\n";
    s += "# balanced allows the agents' APIs, code hosts and package registries (`sbx policy show`).\n";
    s += "network_policy = \"balanced\"\n";
    s += "# Extra domains to allow or block: exact names, \"*.suffix\" wildcards, optional \":port\".\n";
    s += "allowed_domains = []\nblocked_domains = []\n";
    s += "# Environment variables the sandbox must get from the host (or from [secrets]).\n";
    match info {
        Some(i) => s += &format!("required_secrets = [\"{}\"]\n", i.secret_env),
        None => s += "required_secrets = []\n",
    }
    s += "# Other folders to mount, read-only unless suffixed with \":rw\".\n";
    s += "# extra_workspaces = [\"../shared-lib\"]\n";
    s += "# Isolation runtime: auto | gvisor | bwrap | docker | podman | docker-sbx\n";
    s += "runtime = \"auto\"\n";
    s += "# Put the agent on its own git worktree: \"auto\" or a branch name.\n# branch = \"auto\"\n";
    s += "\n[image]\n";
    s += "# Base image: \"scratch\", a registry reference, or \"oci-layout:PATH\".\n# base = \"scratch\"\n";
    s += "# Platforms every tool is locked and built for.\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n";
    s += &format!(
        "# mise's data dir inside the image (absolute: installs are not relocatable).\n# data_dir = \"{DEFAULT_DATA_DIR}\"\n"
    );
    s += "# Layer compression: gzip | zstd\n# compression = \"gzip\"\n";
    s += "\n[tools]\n# mise syntax; these win over the mise files, for the sandbox only.\n# node = \"22\"\n";
    s += "\n[secrets]\n# Where the real value of each service's credential comes from on the host.\n";
    match info {
        Some(i) => s += &format!("{} = {{ env = \"{}\" }}\n", i.secret_service, i.secret_env),
        None => s += "# anthropic = { env = \"ANTHROPIC_API_KEY\" }\n",
    }
    s += "# github = { command = \"gh auth token\" }\n";
    s
}
