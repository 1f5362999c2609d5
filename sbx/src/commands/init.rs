//! `sbx init`: write a commented `.sbx.toml` for the project.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, WrapErr};
use sbx_mise::config::{DiscoverOptions, discover};

use crate::agents::{self, AgentPreset};
use crate::cli::InitArgs;
use crate::output::Output;
use crate::sbx_toml::{self, DEFAULT_DATA_DIR};

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
        None => detect_agent(env).map(|a| a.agent.as_str().to_string()),
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

/// The first agent (in preset order) whose program is on `PATH`, else whose configuration
/// directory is in `HOME`.
fn detect_agent(env: &BTreeMap<String, String>) -> Option<&'static AgentPreset> {
    let path_dirs: Vec<PathBuf> = env.get("PATH").map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    let home = env.get("HOME").map(PathBuf::from);
    let presets = agents::all();
    presets
        .iter()
        .find(|a| a.program().is_some_and(|p| path_dirs.iter().any(|d| d.join(p).is_file())))
        .or_else(|| presets.iter().find(|a| a.config_dir.zip(home.as_ref()).is_some_and(|(c, h)| h.join(c).is_dir())))
}

fn render(dir: &Path, files: &[PathBuf], agent: Option<&str>) -> String {
    // The service of the agent's credential (`anthropic` for claude, …), if the proxy injects it.
    let service =
        agent.and_then(|a| agents::all().iter().find(|p| p.agent.as_str() == a)).and_then(AgentPreset::service);
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
    match service {
        Some(svc) => s += &format!("required_secrets = [\"{}\"]\n", svc.env),
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
    match service {
        Some(svc) => s += &format!("{} = {{ env = \"{}\" }}\n", svc.name, svc.env),
        None => s += "# anthropic = { env = \"ANTHROPIC_API_KEY\" }\n",
    }
    s += "# github = { command = \"gh auth token\" }\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_the_agent_presets_service() {
        let text = render(Path::new("/p"), &[], Some("gemini"));
        assert!(text.contains("required_secrets = [\"GEMINI_API_KEY\"]"), "{text}");
        assert!(text.contains("\ngemini = { env = \"GEMINI_API_KEY\" }"), "the proxy injects `gemini`:\n{text}");
        for agent in ["opencode", "shell"] {
            let text = render(Path::new("/p"), &[], Some(agent));
            assert!(text.contains("required_secrets = []") && text.contains("# anthropic = {"), "{text}");
        }
    }

    #[test]
    fn detects_the_agent_on_path_then_in_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/.gemini")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let env = BTreeMap::from([
            ("HOME".to_string(), dir.path().join("home").display().to_string()),
            ("PATH".to_string(), dir.path().join("bin").display().to_string()),
        ]);
        assert_eq!(detect_agent(&env).map(|a| a.agent.as_str()), Some("gemini"));
        std::fs::write(dir.path().join("bin/codex"), "").unwrap();
        assert_eq!(detect_agent(&env).map(|a| a.agent.as_str()), Some("codex"));
    }
}
