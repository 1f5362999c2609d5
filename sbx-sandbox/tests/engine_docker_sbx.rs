//! Docker Sandboxes (`runtime = "docker-sbx"`) against a stand-in of Docker's `sbx` CLI
//! (`fixtures/engines/sbx`) that records every call and answers like the documented CLI. Every
//! call sbx makes is asserted, in order.

mod support;

use std::path::{Path, PathBuf};

use sbx_sandbox::ExtraWorkspace;
use sbx_sandbox::docker_sbx::plan::ServiceSecret;
use sbx_sandbox::docker_sbx::{self, DockerSbxError, Plan, Preset, Request, Template};

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/engines/sbx").canonicalize().unwrap()
}

struct Env {
    tmp: tempfile::TempDir,
    cli: PathBuf,
    state: PathBuf,
}

impl Env {
    /// A stand-in with its own state, reached through a wrapper named `sbx`.
    fn new(default_preset: &str, exit: i32) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("standin");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let cli = bin.join("sbx");
        std::fs::write(
            &cli,
            format!(
                "#!/bin/sh\nSBX_STANDIN_STATE={} SBX_STANDIN_DEFAULT={default_preset} SBX_STANDIN_EXIT={exit} exec {} \"$@\"\n",
                state.display(),
                standin().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(tmp.path().join("ws")).unwrap();
        std::fs::create_dir_all(tmp.path().join("docs")).unwrap();
        Env { tmp, cli, state }
    }

    fn ws(&self) -> PathBuf {
        self.tmp.path().join("ws")
    }

    /// Runs the stand-in directly (to arrange state); returns stdout.
    fn sbx(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new(&self.cli)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "arranging {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The calls recorded since the last `take_calls`, one `Vec` of args each.
    fn take_calls(&self) -> Vec<Vec<String>> {
        let path = self.state.join("calls");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.lines().map(|l| l.split('\u{1f}').filter(|a| !a.is_empty()).map(String::from).collect()).collect()
    }

    fn request(&self, template: Template) -> Request {
        Request {
            cli: self.cli.clone(),
            name: "proj-1a2b".into(),
            agent: "claude".into(),
            workspace: self.ws(),
            extra_workspaces: vec![ExtraWorkspace { path: self.tmp.path().join("docs"), writable: false }],
            branch: Some("sbx/agent".into()),
            template,
            preset: Preset::Balanced,
            balanced_domains: vec!["registry.npmjs.org".into(), "api.anthropic.com".into()],
            allowed_domains: vec!["api.example.com".into()],
            blocked_domains: vec!["bad.example.com".into()],
            services: vec![ServiceSecret { service: "anthropic".into(), variable: "ANTHROPIC_API_KEY".into() }],
            agent_args: vec!["--continue".into()],
            record: self.tmp.path().join("record.json"),
            cache_dir: support::artifacts().join("cache-docker-sbx"),
        }
    }
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The ids of the rules the stand-in holds for `sandbox`, with their decision.
fn rule_ids(env: &Env, sandbox: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(env.state.join("rules")).unwrap_or_default();
    text.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[2] == format!("sandbox:{sandbox}"))
        .map(|f| (f[0].to_string(), f[3].to_string()))
        .collect()
}

#[test]
fn a_missing_secret_stops_before_anything_changes_and_names_the_command() {
    let env = Env::new("balanced", 0);
    let err = Plan::compute(&env.request(Template::AgentDefault)).unwrap_err();
    let cli = env.cli.display().to_string();
    match &err {
        DockerSbxError::MissingSecrets { services, commands } => {
            assert_eq!(services, &v(&["anthropic"]));
            assert!(commands.contains(&format!("{cli} secret set -g anthropic")), "{commands}");
            assert!(commands.contains(&format!("echo \"$ANTHROPIC_API_KEY\" | {cli} secret set -g anthropic")));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(env.take_calls(), vec![v(&["secret", "ls"])]);
    // A secret scoped to another sandbox does not count; one scoped to this sandbox does.
    env.sbx(&["create", "--name", "other", "shell", &env.ws().display().to_string()], "");
    env.sbx(&["secret", "set", "other", "anthropic"], "sk-ant-other-0000");
    assert!(matches!(Plan::compute(&env.request(Template::AgentDefault)), Err(DockerSbxError::MissingSecrets { .. })));
}

#[test]
fn first_start_loads_the_template_creates_scopes_rules_and_runs() {
    let env = Env::new("balanced", 3);
    env.sbx(&["secret", "set", "-g", "anthropic"], "sk-ant-api03-abcdef");
    env.take_calls();
    let req = env.request(Template::Layout(support::busybox_layout()));
    let plan = Plan::compute(&req).unwrap();
    let digest = sbx_sandbox::oci::resolve(&support::busybox_layout()).unwrap().manifest_digest;
    let hex = digest.trim_start_matches("sha256:");
    let tag = format!("sbx-image:{}", &hex[..12]);
    let cli = env.cli.display().to_string();
    let (ws, docs) = (env.ws().display().to_string(), env.tmp.path().join("docs").display().to_string());
    let archive = req.cache_dir.join("engine-images").join(format!("{hex}.tar")).display().to_string();
    assert_eq!(
        plan.render(),
        v(&[
            &format!("{cli} template load {archive}"),
            &format!("{cli} create --name proj-1a2b --branch sbx/agent --template {tag} claude {ws} {docs}:ro"),
            &format!("{cli} policy allow network --sandbox proj-1a2b api.example.com"),
            &format!("{cli} policy deny network --sandbox proj-1a2b bad.example.com"),
            &format!("{cli} run proj-1a2b -- --continue"),
        ])
    );
    assert_eq!(env.take_calls(), vec![v(&["secret", "ls"]), v(&["ls"]), v(&["policy", "ls"])]);
    assert_eq!(plan.execute().unwrap(), 3, "sbx run's exit code is passed through");
    assert_eq!(
        env.take_calls(),
        vec![
            v(&["template", "load", &archive]),
            v(&[
                "create",
                "--name",
                "proj-1a2b",
                "--branch",
                "sbx/agent",
                "--template",
                &tag,
                "claude",
                &ws,
                &format!("{docs}:ro")
            ]),
            v(&["policy", "allow", "network", "--sandbox", "proj-1a2b", "api.example.com"]),
            v(&["policy", "deny", "network", "--sandbox", "proj-1a2b", "bad.example.com"]),
            v(&["run", "proj-1a2b", "--", "--continue"]),
        ]
    );
    assert!(env.sbx(&["template", "ls"], "").contains(&tag));
    env.take_calls();

    // Same settings again: nothing to change, straight to `run`.
    let again = Plan::compute(&req).unwrap();
    assert_eq!(again.render(), v(&[&format!("{cli} run proj-1a2b -- --continue")]));
    assert_eq!(again.execute().unwrap(), 3);
    assert_eq!(
        env.take_calls(),
        vec![v(&["secret", "ls"]), v(&["ls"]), v(&["policy", "ls"]), v(&["run", "proj-1a2b", "--", "--continue"])]
    );

    // Changed domains: the rules sbx added are removed by id and the wanted ones added; a rule a
    // kit added for this sandbox is left alone.
    env.sbx(&["policy", "allow", "network", "--sandbox", "proj-1a2b", "kit.example.com"], "");
    let kit_rule = rule_ids(&env, "proj-1a2b").last().unwrap().0.clone();
    env.take_calls();
    let old: Vec<String> =
        rule_ids(&env, "proj-1a2b").into_iter().map(|(id, _)| id).filter(|id| *id != kit_rule).collect();
    assert_eq!(old.len(), 2);
    let mut changed = req.clone();
    changed.allowed_domains = vec!["api.example.com".into(), "*.example.org".into()];
    changed.blocked_domains.clear();
    let plan = Plan::compute(&changed).unwrap();
    plan.execute().unwrap();
    let calls = env.take_calls();
    assert_eq!(&calls[..3], &[v(&["secret", "ls"]), v(&["ls"]), v(&["policy", "ls"])]);
    let mut removed: Vec<String> = calls[3..5].iter().map(|c| c[4].clone()).collect();
    removed.sort();
    let mut want = old.clone();
    want.sort();
    assert_eq!(removed, want, "{calls:?}");
    assert!(calls[3..5].iter().all(|c| c[..4] == v(&["policy", "rm", "network", "--id"])));
    assert_eq!(
        &calls[5..],
        &[
            v(&["policy", "allow", "network", "--sandbox", "proj-1a2b", "*.example.org,api.example.com"]),
            v(&["run", "proj-1a2b", "--", "--continue"]),
        ]
    );
    assert!(rule_ids(&env, "proj-1a2b").iter().any(|(id, _)| *id == kit_rule), "the kit's rule was removed");

    // Other settings (a new branch): the sandbox sbx created is removed and created again.
    let mut moved = changed.clone();
    moved.branch = Some("sbx/other".into());
    let plan = Plan::compute(&moved).unwrap();
    assert_eq!(
        plan.render()[..3],
        [
            format!("{cli} template load {archive}"),
            format!("{cli} rm --force proj-1a2b"),
            format!("{cli} create --name proj-1a2b --branch sbx/other --template {tag} claude {ws} {docs}:ro"),
        ]
    );
}

#[test]
fn presets_map_onto_dockers_global_default_with_scoped_rules_only() {
    // Docker's default is deny-all: balanced becomes the balanced list, scoped.
    let env = Env::new("deny-all", 0);
    env.sbx(&["secret", "set", "-g", "anthropic"], "sk-ant-api03-abcdef");
    let mut req = env.request(Template::Existing("team/agent:1".into()));
    req.blocked_domains.clear();
    req.extra_workspaces.clear();
    req.branch = None;
    let cli = env.cli.display().to_string();
    let lines = Plan::compute(&req).unwrap().render();
    assert!(
        lines.contains(&format!(
            "{cli} policy allow network --sandbox proj-1a2b api.anthropic.com,api.example.com,registry.npmjs.org"
        )),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("policy allow network api") && !l.contains("set-default")));
    // allow-all: `**` for this sandbox only.
    req.preset = Preset::AllowAll;
    let lines = Plan::compute(&req).unwrap().render();
    assert!(
        lines.contains(&format!("{cli} policy allow network --sandbox proj-1a2b '**,api.example.com'")),
        "{lines:?}"
    );

    // Docker's default is balanced: deny-all without allowed domains is a scoped `deny **`…
    let env = Env::new("balanced", 0);
    env.sbx(&["secret", "set", "-g", "anthropic"], "sk-ant-api03-abcdef");
    let mut req = env.request(Template::AgentDefault);
    req.preset = Preset::DenyAll;
    req.allowed_domains.clear();
    req.blocked_domains.clear();
    let lines = Plan::compute(&req).unwrap().render();
    assert!(lines.contains(&format!("{cli} policy deny network --sandbox proj-1a2b '**'", cli = env.cli.display())));
    // …and with allowed domains it cannot be expressed: refused, not weakened.
    req.allowed_domains = vec!["api.example.com".into()];
    match Plan::compute(&req) {
        Err(DockerSbxError::Policy { wanted, global, .. }) => {
            assert_eq!((wanted.as_str(), global.as_str()), ("deny-all", "balanced"))
        }
        other => panic!("expected a policy error, got {other:?}"),
    }
    // Balanced under an allow-all default is refused too.
    let env = Env::new("allow-all", 0);
    env.sbx(&["secret", "set", "-g", "anthropic"], "sk-ant-api03-abcdef");
    assert!(matches!(Plan::compute(&env.request(Template::AgentDefault)), Err(DockerSbxError::Policy { .. })));
}

#[test]
fn a_sandbox_sbx_did_not_create_is_not_touched() {
    let env = Env::new("balanced", 0);
    env.sbx(&["secret", "set", "-g", "anthropic"], "sk-ant-api03-abcdef");
    env.sbx(&["create", "--name", "proj-1a2b", "claude", &env.ws().display().to_string()], "");
    env.take_calls();
    let err = Plan::compute(&env.request(Template::AgentDefault)).unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
    assert!(format!("{err:?}").contains("sbx did not create"));
    assert_eq!(env.take_calls(), vec![v(&["secret", "ls"]), v(&["ls"])]);
}

#[test]
fn dockers_cli_is_found_on_path_skipping_this_program() {
    let env = Env::new("balanced", 0);
    let me = std::env::current_exe().unwrap();
    let first = env.tmp.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    std::os::unix::fs::symlink(&me, first.join("sbx")).unwrap();
    let path = std::env::join_paths([first.clone(), env.cli.parent().unwrap().to_path_buf()]).unwrap();
    assert_eq!(docker_sbx::find_cli(None, Some(&path), &me).unwrap(), env.cli);
    let only_me = std::env::join_paths([first.clone()]).unwrap();
    let err = docker_sbx::find_cli(None, Some(&only_me), &me).unwrap_err();
    assert!(matches!(err, DockerSbxError::Missing { .. }));
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains("docker_sbx") && help.contains("docs.docker.com/ai/sandboxes"), "{help}");
    assert!(docker_sbx::find_cli(Some(&first.join("sbx")), None, &me).is_err(), "docker_sbx pointing at sbx itself");
    assert_eq!(docker_sbx::find_cli(Some(&env.cli), None, &me).unwrap(), env.cli);
}
