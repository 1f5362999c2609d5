//! End-to-end tests of Runtimes on existing engines: Docker Sandboxes (stand-in CLI), docker and podman.

mod support;

use std::path::Path;
use std::process::Command;

/// A project with `runtime = "docker-sbx"` and a stand-in of Docker's `sbx` first on PATH.
fn setup(tmp: &Path, toml: &str) -> (std::path::PathBuf, String) {
    let (project, bin, state) = (tmp.join("proj"), tmp.join("bin"), tmp.join("standin"));
    for d in [&project, &bin, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(project.join(".sbx.toml"), toml).unwrap();
    std::fs::write(project.join("sbx.lock"), "").unwrap();
    let standin = support::repo_root().join("fixtures/engines/sbx");
    let wrapper = bin.join("sbx");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nSBX_STANDIN_STATE={} exec {} \"$@\"\n", state.display(), standin.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    (project, path)
}

fn calls(tmp: &Path) -> Vec<String> {
    std::fs::read_to_string(tmp.join("standin/calls"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_end_matches('\u{1f}').replace('\u{1f}', " "))
        .collect()
}

fn sbx(tmp: &Path, project: &Path, path: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sbx"))
        .args(args)
        .current_dir(project)
        .env("PATH", path)
        .env("SBX_STATE_DIR", tmp.join("state"))
        .env("SBX_CACHE_DIR", tmp.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn docker_sbx_dry_run_prints_the_exact_commands_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (project, path) = setup(
        tmp.path(),
        "[sandbox]\nagent = \"claude\"\nruntime = \"docker-sbx\"\ntemplate = \"team/agent:1\"\n\
         allowed_domains = [\"api.example.com\"]\nblocked_domains = [\"bad.example.com\"]\n",
    );
    let out = sbx(tmp.path(), &project, &path, &["start", "--dry-run", "--name", "demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli = tmp.path().join("bin/sbx").display().to_string();
    let root = project.canonicalize().unwrap().display().to_string();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{cli} create --name demo --template team/agent:1 claude {root}\n\
             {cli} policy allow network --sandbox demo api.example.com\n\
             {cli} policy deny network --sandbox demo bad.example.com\n\
             {cli} run demo\n"
        )
    );
    assert_eq!(calls(tmp.path()), vec!["secret ls", "ls", "policy ls"], "a dry run only reads");
}

#[test]
fn docker_sbx_start_stops_on_a_missing_secret_with_the_command_to_set_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (project, path) = setup(
        tmp.path(),
        "[sandbox]\nagent = \"claude\"\nruntime = \"docker-sbx\"\ntemplate = \"team/agent:1\"\n\
         required_secrets = [\"ANTHROPIC_API_KEY\"]\n",
    );
    let out = sbx(tmp.path(), &project, &path, &["start", "--name", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let cli = tmp.path().join("bin/sbx").display().to_string();
    assert!(err.contains(&format!("{cli} secret set -g anthropic")), "{err}");
    assert_eq!(calls(tmp.path()), vec!["secret ls"]);
}
