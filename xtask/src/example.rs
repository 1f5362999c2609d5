//! `cargo xtask example [-- CMD…]`: the main job, end to end, on the bundled example project
//! (`fixtures/projects/plain`: node, python, prettier, black; agent Claude Code).
//!
//! It copies the project to `target/example/plain`, points it at this machine's platform and a
//! small busybox+glibc base (no registry needed), serves nodejs.org and GitHub from the recorded
//! fixtures (npm and PyPI are the live registries), and runs the real CLI:
//! `sbx lock`, `sbx build`, `sbx verify`, then `sbx start -- CMD` (default: the locked node's
//! and Claude Code's `--version`). Run it twice: the second run is warm (nothing re-downloaded,
//! the same image digest).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Where the recorded upstreams are served (loopback only).
const FIXTURE_PORT: u16 = 47180;

/// Runs the example; `args` is the command to start in the sandbox (empty: the version checks).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let command: Vec<String> = args.iter().skip_while(|a| *a == "--").cloned().collect();
    let root = crate::sbx_bin::workspace_root()?;
    let sbx = crate::sbx_bin::sbx_binary(false)?;
    let work = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("example");
    let project = work.join("plain");
    prepare_project(&root.join("fixtures/projects/plain"), &project)?;

    // A fixed port: the recorded upstreams' URLs are part of the lock, so the same port keeps
    // the second run's lock and image identical to the first's.
    let fixed = std::net::SocketAddr::from(([127, 0, 0, 1], FIXTURE_PORT));
    let server = match sbx_fixtures::FixtureServer::start_on(sbx_fixtures::default_root(), fixed) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "note: port {FIXTURE_PORT} is busy ({e}); serving fixtures on another port, so the lock is re-pinned"
            );
            sbx_fixtures::FixtureServer::start_default()?
        }
    };
    let secret = std::env::var("ANTHROPIC_API_KEY").ok();
    if secret.is_none() {
        eprintln!(
            "note: ANTHROPIC_API_KEY is not set; the example uses a placeholder (the agent is only asked for --version)"
        );
    }
    let sbx_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&sbx);
        cmd.arg("-C")
            .arg(&project)
            .args(args)
            .env("SBX_STATE_DIR", work.join("state"))
            .env("SBX_CACHE_DIR", work.join("cache"))
            .env("SBX_NODE_URL", server.url("node"))
            .env("SBX_GO_URL", server.url("go"))
            .env("SBX_GITHUB_API_URL", server.url("github"))
            .env("ANTHROPIC_API_KEY", secret.clone().unwrap_or_else(|| "sk-example-placeholder".into()));
        cmd
    };
    let step = |args: &[&str]| -> anyhow::Result<()> {
        eprintln!("\n$ sbx {}", args.join(" "));
        let status = sbx_cmd(args).status().with_context(|| format!("running {}", sbx.display()))?;
        if !status.success() {
            bail!("`sbx {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    eprintln!("example project: {}", project.display());
    step(&["lock"])?;
    step(&["build"])?;
    step(&["verify"])?;
    if command.is_empty() {
        step(&["start", "--", "node", "--version"])?;
        step(&["start", "--", "claude", "--version"])?;
        eprintln!("\nThe agent itself, interactively: ANTHROPIC_API_KEY=… cargo xtask example -- claude");
    } else {
        let mut args = vec!["start", "--"];
        args.extend(command.iter().map(String::as_str));
        step(&args)?;
    }
    Ok(())
}

/// Copies the example's config into `project`, limited to this machine's platform and based
/// on a busybox+glibc layout (written once).
fn prepare_project(example: &Path, project: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(project)?;
    copy_if_changed(&example.join("mise.toml"), &project.join("mise.toml"))?;
    let sbx_toml = std::fs::read_to_string(example.join(".sbx.toml"))?;
    let platforms = "platforms = [\"linux/amd64\", \"linux/arm64\"]";
    if !sbx_toml.contains(platforms) {
        bail!("{} no longer lists `{platforms}`; update xtask/src/example.rs", example.join(".sbx.toml").display());
    }
    let arch = sbx_fixtures::images::host_arch();
    let local = sbx_toml.replace(platforms, &format!("platforms = [\"linux/{arch}\"]\nbase = \"oci-layout:base\""));
    write_if_changed(&project.join(".sbx.toml"), &local)?;
    if !project.join("base/index.json").is_file() {
        sbx_fixtures::images::glibc_busybox_layout(&project.join("base"))?;
    }
    Ok(())
}

/// Writes only when the content differs, so the lockfile stays current across runs.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn copy_if_changed(from: &Path, to: &Path) -> anyhow::Result<()> {
    write_if_changed(to, &std::fs::read_to_string(from)?)
}
