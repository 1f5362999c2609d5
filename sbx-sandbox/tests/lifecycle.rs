//! Lifecycle on every runtime: exit codes pass through, the environment is built from nothing,
//! detached sandboxes can be listed, exec'd into, stopped and removed; `doctor` reports.

mod engine_daemons;
mod support;

use std::time::Duration;

use sbx_sandbox::state::Status;
use sbx_sandbox::{Outcome, RuntimeChoice, SandboxSpec, Sandboxes, runtime};

fn sandboxes(tmp: &tempfile::TempDir) -> Sandboxes {
    Sandboxes::new(tmp.path().join("state"), support::artifacts().join("cache"))
}

fn spec(tmp: &tempfile::TempDir, name: &str, rt: RuntimeChoice, cmd: &str) -> SandboxSpec {
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut s = SandboxSpec::new(name, support::busybox_layout(), ws);
    s.runtime = rt;
    s.command = vec!["/bin/sh".into(), "-c".into(), cmd.into()];
    s
}

fn attached(sb: &Sandboxes, spec: &SandboxSpec) -> i32 {
    match sb.start(spec, &mut |_| {}).unwrap() {
        Outcome::Exited(c) => c,
        Outcome::Detached(_) => unreachable!(),
    }
}

fn exit_codes_env_and_workspace(rt: RuntimeChoice) {
    let tmp = tempfile::tempdir().unwrap();
    let sb = sandboxes(&tmp);
    assert_eq!(attached(&sb, &spec(&tmp, "codes", rt, "exit 7")), 7);
    // Only the image's, sbx's and the explicit variables; the workspace is writable at its own path.
    let mut s = spec(&tmp, "env", rt, "env | sort > \"$PWD/env.txt\"; pwd >> \"$PWD/env.txt\"");
    s.env.insert("DECLARED".into(), "yes".into());
    assert_eq!(attached(&sb, &s), 0);
    let out = std::fs::read_to_string(tmp.path().join("ws/env.txt")).unwrap();
    let keys: Vec<&str> = out.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for k in &keys {
        assert!(
            ["PATH", "HOME", "TERM", "LANG", "IMAGE_VAR", "DECLARED", "PWD", "SHLVL"].contains(k),
            "unexpected {k}"
        );
    }
    assert!(out.contains("IMAGE_VAR=1") && out.contains("DECLARED=yes") && out.contains("HOME=/home/sbx"), "{out}");
    assert!(out.contains(&tmp.path().join("ws").display().to_string()), "{out}");
}

fn detached_lifecycle(rt: RuntimeChoice) {
    let tmp = tempfile::tempdir().unwrap();
    let sb = sandboxes(&tmp);
    let mut s = spec(&tmp, "bg", rt, "echo started; sleep 60");
    s.detach = true;
    assert!(matches!(sb.start(&s, &mut |_| {}).unwrap(), Outcome::Detached(_)));
    let list = sb.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, Status::Running);
    assert!(sb.start(&s, &mut |_| {}).is_err(), "a running name must not start twice");
    // exec runs inside the same sandbox: it sees the workspace and the running sleep.
    let probe = format!("ps | grep -q 'sleep 60' && touch {}/exec-ok", tmp.path().join("ws").display());
    let code = sb.exec("bg", &["/bin/sh".into(), "-c".into(), probe], false).unwrap();
    assert_eq!(code, 0);
    assert!(tmp.path().join("ws/exec-ok").exists());
    sb.stop("bg", Duration::from_secs(5)).unwrap();
    assert_eq!(sb.list().unwrap()[0].status, Status::Exited);
    sb.remove("bg").unwrap();
    assert!(sb.list().unwrap().is_empty());
    assert!(sb.exec("bg", &["true".into()], false).is_err());
}

#[test]
fn bwrap_exit_codes_env_and_workspace() {
    exit_codes_env_and_workspace(RuntimeChoice::Bwrap);
}

#[test]
fn gvisor_exit_codes_env_and_workspace() {
    exit_codes_env_and_workspace(RuntimeChoice::Gvisor);
}

#[test]
fn bwrap_detached_lifecycle() {
    detached_lifecycle(RuntimeChoice::Bwrap);
}

#[test]
fn gvisor_detached_lifecycle() {
    detached_lifecycle(RuntimeChoice::Gvisor);
}

#[test]
fn doctor_and_auto() {
    // docker needs a running daemon (podman needs none).
    let _dockerd = engine_daemons::Dockerd::start(false);
    let report = runtime::doctor();
    for entry in &report {
        assert!(entry.problem.is_none(), "{} must work here: {:?}", entry.runtime, entry.problem);
    }
    let auto = runtime::select(RuntimeChoice::Auto).unwrap();
    assert_eq!(auto.kind(), sbx_sandbox::RuntimeKind::Gvisor, "auto picks the strongest runtime");
    assert!("nope".parse::<RuntimeChoice>().is_err());
}

fn tty_attached(rt: RuntimeChoice) {
    let tmp = tempfile::tempdir().unwrap();
    let sb = sandboxes(&tmp);
    let mut s = spec(&tmp, "tty", rt, "test -t 0 && test -t 1 && [ \"$TERM\" = xterm-256color ] && exit 5; exit 1");
    s.tty = true;
    assert_eq!(attached(&sb, &s), 5, "the command must see a terminal");
}

#[test]
fn bwrap_tty() {
    tty_attached(RuntimeChoice::Bwrap);
}

#[test]
fn gvisor_tty() {
    tty_attached(RuntimeChoice::Gvisor);
}
