//! docker and podman runtimes against real engines started by the test (a private dockerd, a
//! private podman configuration): the built image is loaded by id and runs with the sandbox's
//! settings. The escape suite runs on both engines in `tests/escape.rs`.

mod engine_daemons;
mod support;

use std::collections::BTreeMap;

use sbx_sandbox::{Outcome, RuntimeChoice, SandboxSpec, Sandboxes};

fn run(sandboxes: &Sandboxes, choice: RuntimeChoice, name: &str, workspace: &std::path::Path, cmd: &[&str]) -> i32 {
    let mut spec = SandboxSpec::new(name, support::busybox_layout(), workspace);
    spec.runtime = choice;
    spec.env = BTreeMap::from([("GREETING".to_string(), "hello from the host".to_string())]);
    spec.command = cmd.iter().map(|s| s.to_string()).collect();
    match sandboxes.start(&spec, &mut |_| {}).unwrap() {
        Outcome::Exited(code) => code,
        Outcome::Detached(_) => unreachable!(),
    }
}

/// Exit codes pass through; env, user, workspace, read-only root and the image id.
fn basics(choice: RuntimeChoice, tag: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let sandboxes = Sandboxes::new(tmp.path().join("state"), support::artifacts().join(format!("cache-{tag}")));
    assert_eq!(run(&sandboxes, choice, &format!("{tag}-exit"), &ws, &["sh", "-c", "exit 7"]), 7);
    let script = format!(
        "set -e; test \"$GREETING\" = 'hello from the host'; test \"$IMAGE_VAR\" = 1; test -z \"$DOCKER_HOST\"; \
         test \"$(pwd)\" = {ws}; echo ok > {ws}/written; ! touch /etc/x 2>/dev/null; touch /tmp/x $HOME/x; \
         test \"$(id -u)\" = {uid}; test ! -e /usr/bin/suid-busybox -o ! -u /usr/bin/suid-busybox",
        ws = ws.display(),
        uid = std::fs::metadata(&ws).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap()
    );
    assert_eq!(run(&sandboxes, choice, &format!("{tag}-env"), &ws, &["sh", "-c", &script]), 0);
    assert_eq!(std::fs::read_to_string(ws.join("written")).unwrap(), "ok\n");
}

#[test]
fn docker_runs_the_image_by_id() {
    let d = engine_daemons::Dockerd::start(false);
    basics(RuntimeChoice::Docker, "docker");
    let images = d.docker(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("sha256:") && images.contains("sbx-image:"), "{images}");
}

#[test]
fn podman_runs_the_image_by_id() {
    let p = engine_daemons::Podman::setup();
    basics(RuntimeChoice::Podman, "podman");
    let images = p.podman(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("sbx-image"), "{images}");
}

/// With gVisor registered in Docker (`runtimes.runsc` in daemon.json), the docker runtime adds
/// `--runtime runsc`: the same sandbox settings hold, and the container runs on gVisor's
/// user-space kernel (its `/proc/version` names gVisor's kernel, not the host's).
#[test]
fn docker_with_gvisor_registered_runs_on_runsc() {
    let _d = engine_daemons::Dockerd::start(true);
    assert!(sbx_sandbox::runtime::engine::docker_has_runsc(), "the private dockerd lists runsc");
    basics(RuntimeChoice::Docker, "docker-runsc");
    let host_version = std::fs::read_to_string("/proc/version").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let sandboxes = Sandboxes::new(tmp.path().join("state"), support::artifacts().join("cache-docker-runsc"));
    let script = format!("cat /proc/version > {}/version", ws.display());
    assert_eq!(run(&sandboxes, RuntimeChoice::Docker, "docker-runsc-kernel", &ws, &["sh", "-c", &script]), 0);
    let inside = std::fs::read_to_string(ws.join("version")).unwrap();
    assert_ne!(inside, host_version, "the container saw the host kernel: not on runsc");
}
