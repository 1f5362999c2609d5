//! End-to-end tests of sbx start and the sandbox lifecycle commands, on every runtime.
//!
//! Most tests run the real `sbx` binary on a project whose `.sbx/image` is a small busybox
//! image written here (an OCI layout with a `mytool` that prints its version), so they need
//! neither the network nor `sbx build`. State and caches go to the test's temp dir.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

/// A project with a busybox image in `.sbx/image`, and a private state/cache dir.
struct Fixture {
    tmp: tempfile::TempDir,
}

/// A busybox image with `/opt/tool/bin/mytool` printing `mytool 1.2.3`, as an OCI layout.
fn write_image(layout: &Path, work: &Path) {
    let root = work.join("rootfs");
    sbx_fixtures::images::busybox_rootfs(&root).unwrap();
    std::fs::create_dir_all(root.join("opt/tool/bin")).unwrap();
    let mytool = root.join("opt/tool/bin/mytool");
    std::fs::write(&mytool, "#!/bin/sh\necho \"mytool 1.2.3\"\n").unwrap();
    std::fs::set_permissions(&mytool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sbx_fixtures::images::write_layout(&root, layout, &["PATH=/opt/tool/bin:/bin", "IMAGE_VAR=1"]).unwrap();
}

impl Fixture {
    /// A project with `sbx_toml` as its `.sbx.toml`, a lockfile, and the image built after it.
    fn new(sbx_toml: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        std::fs::create_dir_all(project.join(".sbx")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        std::fs::write(project.join(".sbx.toml"), sbx_toml).unwrap();
        std::fs::write(project.join("mise.toml"), "[tools]\n").unwrap();
        std::fs::write(project.join("sbx.lock"), "# test lockfile\n").unwrap();
        write_image(&project.join(".sbx/image"), tmp.path());
        Fixture { tmp }
    }

    fn project(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    /// `sbx -C project …` with a clean environment (nothing read above the temp dir), private
    /// state and cache, as a std `Command` (to spawn it); run as `uid` when given.
    fn command(&self, uid: Option<u32>) -> StdCommand {
        let mut cmd = match uid {
            Some(uid) => {
                let mut c = StdCommand::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={uid}")).arg("--clear-groups").arg("--");
                c.arg(env!("CARGO_BIN_EXE_sbx"));
                c
            }
            None => StdCommand::new(env!("CARGO_BIN_EXE_sbx")),
        };
        cmd.env_clear()
            .env("HOME", self.tmp.path().join("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MISE_CEILING_PATHS", self.tmp.path())
            .env("NO_COLOR", "1")
            .env("SBX_STATE_DIR", self.tmp.path().join("state"))
            .env("SBX_CACHE_DIR", self.tmp.path().join("cache"))
            .arg("-C")
            .arg(self.project());
        cmd
    }

    /// [`Fixture::command`] for assertions.
    fn sbx(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command(None))
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tool_version_and_exit_codes(runtime: &str) {
    let f = Fixture::new("[sandbox]\nagent = \"shell\"\n");
    let out = f.sbx().args(["start", "--runtime", runtime, "--", "mytool", "--version"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "mytool 1.2.3");
    let out = f.sbx().args(["start", "--runtime", runtime, "--", "sh", "-c", "exit 42"]).output().unwrap();
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    // The workspace is the project, read-write at its own path.
    let args = ["start", "--runtime", runtime, "--", "sh", "-c", "pwd; echo hi > made-inside"];
    let out = f.sbx().args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), f.project().display().to_string());
    assert_eq!(std::fs::read_to_string(f.project().join("made-inside")).unwrap(), "hi\n");
}

#[test]
fn bwrap_tool_version_and_exit_codes() {
    tool_version_and_exit_codes("bwrap");
}

#[test]
fn gvisor_tool_version_and_exit_codes() {
    tool_version_and_exit_codes("gvisor");
}

fn env_from_nothing_with_secrets(runtime: &str) {
    let f = Fixture::new(
        "[sandbox]\nrequired_secrets = [\"ANTHROPIC_API_KEY\", \"PLAIN_TOKEN\", \"FROM_CMD\"]\n\
         [secrets]\nanthropic = { env = \"ANTHROPIC_API_KEY\" }\nFROM_CMD = { command = \"echo from-command\" }\n",
    );
    let out = f
        .sbx()
        .env("ANTHROPIC_API_KEY", "sk-real-anthropic-key")
        .env("PLAIN_TOKEN", "plain-value")
        .env("HOST_CANARY", "must-not-leak")
        .args(["start", "--runtime", runtime, "--", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert!(!env.contains("must-not-leak") && !env.contains("HOST_CANARY"), "{env}");
    assert!(!env.contains("sk-real-anthropic-key"), "the real key must stay outside: {env}");
    assert!(env.contains("ANTHROPIC_API_KEY=sbx-sentinel-anthropic"), "{env}");
    assert!(env.contains("PLAIN_TOKEN=plain-value") && env.contains("FROM_CMD=from-command"), "{env}");
    assert!(env.contains("IMAGE_VAR=1") && env.contains("HTTPS_PROXY=http://127.0.0.1:3128"), "{env}");
    assert!(env.contains("SSL_CERT_FILE=/.sbx/ca.pem"), "an injected credential needs the proxy's CA: {env}");
    let allowed = [
        "PATH",
        "HOME",
        "TERM",
        "LANG",
        "IMAGE_VAR",
        "PWD",
        "SHLVL",
        "ANTHROPIC_API_KEY",
        "PLAIN_TOKEN",
        "FROM_CMD",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ];
    for line in env.lines() {
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        let proxy = key.to_ascii_uppercase().ends_with("_PROXY");
        assert!(allowed.contains(&key) || proxy, "unexpected variable {key} in the sandbox");
    }
}

/// A project owned by an ordinary user (uid 1000): the agent runs as that unprivileged user
/// with no capabilities, and its writes to the project are that user's files on the host.
/// `sbx_user`: the uid sbx itself runs as (root for gVisor, which needs it here; the owner for
/// bwrap, the everyday case of a developer running sbx on their own project).
fn runs_as_the_unprivileged_project_owner(runtime: &str, sbx_user: u32) {
    let f = Fixture::new("");
    let chown = StdCommand::new("chown").args(["-R", "1000:1000"]).arg(f.tmp.path()).status().unwrap();
    assert!(chown.success());
    let script = "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd):' /proc/self/status; touch written";
    let mut cmd = f.command(Some(sbx_user));
    let out = cmd.args(["start", "--runtime", runtime, "--", "sh", "-c", script]).output().unwrap();
    assert!(out.status.success(), "{runtime}: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{runtime}: {text}");
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        let line = lines.iter().find(|l| l.starts_with(cap)).unwrap_or_else(|| panic!("{runtime}: no {cap}: {text}"));
        assert!(line.ends_with("0000000000000000"), "{runtime}: capabilities left: {line}");
    }
    let written = std::fs::metadata(f.project().join("written")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&written), 1000, "{runtime}: the host sees the owner's file");
}

#[test]
fn bwrap_runs_as_the_unprivileged_project_owner() {
    runs_as_the_unprivileged_project_owner("bwrap", 1000);
}

/// bwrap maps only its caller into the sandbox: root starting another user's project is refused
/// with what to do instead, not left to fail on the first write.
#[test]
fn bwrap_as_root_on_another_users_project_says_what_to_do() {
    let f = Fixture::new("");
    let chown = StdCommand::new("chown").args(["-R", "1000:1000"]).arg(f.project()).status().unwrap();
    assert!(chown.success());
    let out = f.sbx().args(["start", "--runtime", "bwrap", "--", "touch", "written"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("owned by uid 1000") && stderr(&out).contains("run sbx as that user"),
        "{}",
        stderr(&out)
    );
    assert!(!f.project().join("written").exists());
}

#[test]
fn gvisor_runs_as_the_unprivileged_project_owner() {
    runs_as_the_unprivileged_project_owner("gvisor", 0);
}

/// Attached: a SIGTERM or SIGINT sent to `sbx start` reaches the command inside, and the
/// command's exit code is sbx's.
fn signals_reach_the_command(runtime: &str) {
    use std::io::BufRead;
    let f = Fixture::new("");
    for (signal, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let script = format!("trap 'echo got-{name}; exit 7' {name}; echo ready; while :; do sleep 1; done");
        let mut child = f
            .command(None)
            .args(["start", "--runtime", runtime, "--", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready", "{runtime}");
        // SAFETY: kill(2) of the child this test spawned.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        assert_eq!(lines.next().unwrap().unwrap(), format!("got-{name}"), "{runtime}: SIG{name} not forwarded");
        assert_eq!(child.wait().unwrap().code(), Some(7), "{runtime}: the command's exit code");
    }
}

#[test]
fn bwrap_signals_reach_the_command() {
    signals_reach_the_command("bwrap");
}

#[test]
fn gvisor_signals_reach_the_command() {
    signals_reach_the_command("gvisor");
}

/// Attached to a terminal: the command gets a terminal of the caller's size, and a resize of the
/// caller's terminal (SIGWINCH) reaches it.
fn terminal_size_follows_the_callers(runtime: &str) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let f = Fixture::new("");
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty fills the two descriptors; no name buffer or termios is passed.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: openpty returned these descriptors and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let script = "stty size; trap 'stty size; exit 3' WINCH; echo ready; while :; do sleep 1; done";
    let mut cmd = f.command(None);
    cmd.args(["start", "--runtime", runtime, "--", "sh", "-c", script])
        .env("TERM", "xterm")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the child makes the pty its terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |text: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !output.lock().unwrap().contains(text) {
            assert!(std::time::Instant::now() < deadline, "{runtime}: no `{text}` in {:?}", output.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for("ready");
    assert!(output.lock().unwrap().contains("24 80"), "{runtime}: {:?}", output.lock().unwrap());
    let bigger = libc::winsize { ws_row: 40, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ on our own pty master; the kernel signals the terminal's foreground group.
    assert_eq!(unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::TIOCSWINSZ, &bigger) }, 0);
    wait_for("40 100");
    assert_eq!(child.wait().unwrap().code(), Some(3), "{runtime}: {:?}", output.lock().unwrap());
}

#[test]
fn bwrap_terminal_size_follows_the_callers() {
    terminal_size_follows_the_callers("bwrap");
}

#[test]
fn gvisor_terminal_size_follows_the_callers() {
    terminal_size_follows_the_callers("gvisor");
}

#[test]
fn bwrap_env_from_nothing_with_secrets() {
    env_from_nothing_with_secrets("bwrap");
}

#[test]
fn gvisor_env_from_nothing_with_secrets() {
    env_from_nothing_with_secrets("gvisor");
}

#[test]
fn missing_secrets_stop_the_start_and_say_how() {
    let f = Fixture::new(
        "[sandbox]\nrequired_secrets = [\"ANTHROPIC_API_KEY\", \"OTHER_TOKEN\", \"BROKEN\"]\n\
         [secrets]\nanthropic = { env = \"ANTHROPIC_API_KEY\" }\nBROKEN = { command = \"exit 3\" }\n",
    );
    let out = f.sbx().args(["start", "--runtime", "bwrap", "--", "touch", "started"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("3 required secrets are missing: ANTHROPIC_API_KEY, OTHER_TOKEN, BROKEN"), "{err}");
    assert!(err.contains("export ANTHROPIC_API_KEY="), "{err}");
    assert!(err.contains("export OTHER_TOKEN=") && err.contains("[secrets]"), "{err}");
    assert!(err.contains("the command `exit 3`"), "{err}");
    assert!(!f.project().join("started").exists(), "nothing may start");
}

#[test]
fn dry_run_prints_the_plan_and_starts_nothing() {
    let f = Fixture::new(
        "[sandbox]\nagent = \"claude\"\nrequired_secrets = [\"ANTHROPIC_API_KEY\"]\nextra_workspaces = [\"docs\"]\n",
    );
    std::fs::create_dir_all(f.project().join("docs")).unwrap();
    let out = f
        .sbx()
        .env("ANTHROPIC_API_KEY", "sk-secret-value")
        .args(["start", "--dry-run", "--name", "plan"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("sandbox   plan"), "{text}");
    assert!(text.contains("command   claude"), "{text}");
    assert!(text.contains(&format!("{} (read-only)", f.project().join("docs").display())), "{text}");
    assert!(text.contains("built, up to date with sbx.lock"), "{text}");
    assert!(text.contains("ANTHROPIC_API_KEY = sentinel `sbx-sentinel-anthropic`"), "{text}");
    assert!(text.contains("~/.claude"), "{text}");
    assert!(!text.contains("sk-secret-value"), "the plan must not print secrets: {text}");
    assert!(!f.tmp.path().join("state/sandboxes/plan").exists(), "a dry run creates nothing");
}

/// docker/podman: the dry run prints the exact `docker run` / `podman run` line (no network, no
/// capabilities, read-only root, the proxy socket relayed, only the project mounted) and
/// neither loads an image nor starts a container.
#[test]
fn engine_dry_run_prints_the_exact_run_line() {
    let f = Fixture::new("");
    for engine in ["docker", "podman"] {
        let out =
            f.sbx().args(["start", "--runtime", engine, "--dry-run", "--name", "plan", "--", "true"]).output().unwrap();
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        let text = stdout(&out);
        let line = text.lines().find(|l| l.contains(&format!("{engine} run "))).unwrap_or_else(|| panic!("{text}"));
        let project = f.project().canonicalize().unwrap().display().to_string();
        for part in [
            "--network none",
            "--cap-drop ALL",
            "--security-opt no-new-privileges",
            "--read-only",
            "--tmpfs /tmp:",
            &format!("--mount type=bind,source={project},target={project}"),
            "target=/.sbx/proxy,readonly",
            "--relay /.sbx/proxy/proxy.sock --port 3128",
            " IMAGE ",
            "-- true",
        ] {
            assert!(line.contains(part), "{engine}: `{part}` missing from {line}");
        }
        assert!(!line.contains("/var/run/docker.sock") && !line.contains("--privileged"), "{line}");
    }
    assert!(!f.tmp.path().join("state/sandboxes/plan").exists(), "a dry run creates nothing");
}

#[test]
fn a_stale_image_is_rebuilt_first_and_a_failed_build_starts_nothing() {
    let f = Fixture::new("");
    // The lockfile changed after the image was built (and is not a valid lockfile).
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(f.project().join("sbx.lock"), "not a lockfile\n").unwrap();
    let out = f.sbx().args(["start", "--runtime", "bwrap", "--", "touch", "started"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("older than sbx.lock; building it first"), "{}", stderr(&out));
    assert!(!f.project().join("started").exists(), "nothing may start");
}

fn detached_lifecycle(runtime: &str) {
    let f = Fixture::new("");
    let out = f
        .sbx()
        .args(["start", "--detach", "--name", "bg", "--runtime", runtime, "--", "sh", "-c", "echo up; sleep 300"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "bg");
    let ls = f.sbx().args(["ls", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(list[0]["name"], "bg");
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["runtime"], runtime);
    let table = stdout(&f.sbx().arg("ls").output().unwrap());
    assert!(table.contains("bg") && table.contains("running"), "{table}");
    // A second start of a running name is refused.
    let again = f.sbx().args(["start", "--detach", "--name", "bg", "--", "true"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already running"), "{}", stderr(&again));
    // exec runs in the same sandbox (it sees the sleep) and passes its exit code through.
    let exec = f.sbx().args(["exec", "bg", "--", "sh", "-c", "ps | grep -q 'sleep 300' && exit 7"]).output();
    assert_eq!(exec.unwrap().status.code(), Some(7));
    // The proxy serves the detached sandbox: a blocked name gets the proxy's 403.
    let probe = "wget -O /dev/null http://blocked.invalid/ 2>&1";
    let exec = f.sbx().args(["exec", "bg", "--", "sh", "-c", probe]).output().unwrap();
    assert!(stdout(&exec).contains("403"), "the proxy must answer: {}", stdout(&exec));
    let stop = f.sbx().args(["stop", "bg"]).output().unwrap();
    assert!(stop.status.success(), "{}", stderr(&stop));
    let ls = f.sbx().args(["ls", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_ne!(list[0]["status"], "running");
    let exec = f.sbx().args(["exec", "bg", "--", "true"]).output().unwrap();
    assert_eq!(exec.status.code(), Some(1));
    let rm = f.sbx().args(["rm", "bg"]).output().unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    let ls = f.sbx().args(["ls", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&ls.stdout).unwrap(), serde_json::json!([]));
    assert!(!f.tmp.path().join("state/sandboxes/bg").exists());
}

#[test]
fn bwrap_detached_ls_exec_stop_rm() {
    detached_lifecycle("bwrap");
}

#[test]
fn gvisor_detached_ls_exec_stop_rm() {
    detached_lifecycle("gvisor");
}

fn git(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn branch_auto_puts_the_agent_on_its_own_worktree() {
    let f = Fixture::new("[sandbox]\nbranch = \"auto\"\n");
    let p = f.project();
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"]);
    let args = ["start", "--name", "wt", "--runtime", "bwrap", "--", "sh", "-c", "pwd; touch agent.txt"];
    let out = f.sbx().args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let wt = PathBuf::from(stdout(&out).trim());
    assert_eq!(wt, p.join(".sbx/worktrees/sbx_wt"), "the workspace is the worktree");
    assert!(wt.join("agent.txt").exists());
    assert!(!p.join("agent.txt").exists(), "the user's checkout is untouched");
    let head = StdCommand::new("git").arg("-C").arg(&wt).args(["rev-parse", "--abbrev-ref", "HEAD"]).output();
    assert_eq!(String::from_utf8(head.unwrap().stdout).unwrap().trim(), "sbx/wt");
    // A second start reuses the worktree.
    let again = f.sbx().args(["start", "--name", "wt", "--runtime", "bwrap", "--", "ls", "agent.txt"]).output();
    assert!(again.unwrap().status.success());
}

#[test]
fn branch_worktree_keeps_git_hooks_read_only() {
    let f = Fixture::new("[sandbox]\nbranch = \"agent-work\"\n");
    let p = f.project();
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"]);
    let hooks = p.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let script = format!(
        "pwd; echo x > {0}/pre-commit 2>/dev/null && echo HOOK-WRITTEN; echo y >> {1} 2>/dev/null && echo CONFIG-WRITTEN; \
         touch {2}/objects/agent-can-write && echo OBJECTS-OK",
        hooks.display(),
        p.join(".git/config").display(),
        p.join(".git").display()
    );
    let out = f.sbx().args(["start", "--runtime", "bwrap", "--", "sh", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&p.join(".sbx/worktrees/agent-work").display().to_string()), "{text}");
    assert!(!text.contains("HOOK-WRITTEN") && !text.contains("CONFIG-WRITTEN"), "{text}");
    assert!(text.contains("OBJECTS-OK"), "commits need the object store: {text}");
    assert!(!hooks.join("pre-commit").exists());
}

#[test]
fn doctor_reports_every_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::sbx(tmp.path()).args(["doctor", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["auto"], "gvisor", "auto picks the strongest runtime that works: {report}");
    let names: Vec<&str> =
        report["runtimes"].as_array().unwrap().iter().map(|r| r["runtime"].as_str().unwrap()).collect();
    assert_eq!(names[..2], ["gvisor", "bwrap"], "strongest first");
    for r in report["runtimes"].as_array().unwrap() {
        if r["problem"].is_null() {
            continue;
        }
        assert!(!r["problem"]["reason"].as_str().unwrap().is_empty(), "a runtime that does not work says why: {r}");
    }
    let text = stdout(&support::sbx(tmp.path()).arg("doctor").output().unwrap());
    assert!(text.contains("gvisor") && text.contains("auto picks this one"), "{text}");
}

#[test]
fn unknown_runtime_is_a_usage_error_with_help() {
    let f = Fixture::new("");
    let out = f.sbx().args(["start", "--runtime", "vmware", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown runtime `vmware`"), "{}", stderr(&out));
}

/// The "done when": on the example project, `sbx lock && sbx build && sbx start --
/// <locked tool> --version` prints the locked version under each runtime (node from the fixture
/// server; Claude Code, the project's agent, from the live npm registry, placed without its
/// postinstall and run natively).
#[test]
fn example_project_lock_build_start_prints_locked_versions() {
    let server = sbx_fixtures::FixtureServer::start_default().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("plain");
    std::fs::create_dir_all(&project).unwrap();
    let example = support::project("plain");
    std::fs::copy(example.join("mise.toml"), project.join("mise.toml")).unwrap();
    let sbx_toml = std::fs::read_to_string(example.join(".sbx.toml")).unwrap();
    // This machine's platform only, and a base with a shell and glibc.
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    let sbx_toml = sbx_toml.replace(
        "platforms = [\"linux/amd64\", \"linux/arm64\"]",
        &format!("platforms = [\"linux/{arch}\"]\nbase = \"oci-layout:base\""),
    );
    std::fs::write(project.join(".sbx.toml"), sbx_toml).unwrap();
    sbx_fixtures::images::glibc_busybox_layout(&project.join("base")).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let sbx = || {
        let mut cmd = support::sbx(&home);
        cmd.env("SBX_STATE_DIR", tmp.path().join("state"))
            .env("SBX_CACHE_DIR", tmp.path().join("cache"))
            .env("SBX_NODE_URL", server.url("node"))
            .env("SBX_GO_URL", server.url("go"))
            .env("SBX_GITHUB_API_URL", server.url("github"))
            .env("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
            .arg("-C")
            .arg(&project);
        cmd
    };
    let lock = sbx().arg("lock").output().unwrap();
    assert!(lock.status.success(), "{}", stderr(&lock));
    let lockfile = std::fs::read_to_string(project.join("sbx.lock")).unwrap();
    assert!(lockfile.contains("[[tools.\"npm:@anthropic-ai/claude-code\"]]"), "the agent is locked like any tool");
    let build = sbx().arg("build").output().unwrap();
    assert!(build.status.success(), "{}", stderr(&build));
    let claude_version = lockfile
        .split("[[tools.\"npm:@anthropic-ai/claude-code\"]]")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap();
    for runtime in ["bwrap", "gvisor"] {
        let node = sbx().args(["start", "--runtime", runtime, "--", "node", "--version"]).output().unwrap();
        assert!(node.status.success(), "{runtime}: {}", stderr(&node));
        assert_eq!(stdout(&node).trim(), "v22.11.0", "{runtime}");
        let claude = sbx().args(["start", "--runtime", runtime, "--", "claude", "--version"]).output().unwrap();
        assert!(claude.status.success(), "{runtime}: {}", stderr(&claude));
        assert!(stdout(&claude).starts_with(&format!("{claude_version} (Claude Code)")), "{}", stdout(&claude));
    }
    // A lockfile newer than the image: `sbx start` rebuilds first; stdout is only the command's.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = std::fs::read_to_string(project.join("sbx.lock")).unwrap();
    std::fs::write(project.join("sbx.lock"), text).unwrap();
    let node = sbx().args(["start", "--runtime", "bwrap", "--", "node", "--version"]).output().unwrap();
    assert!(node.status.success(), "{}", stderr(&node));
    assert!(stderr(&node).contains("building it first"), "{}", stderr(&node));
    assert_eq!(stdout(&node).trim(), "v22.11.0");
}
