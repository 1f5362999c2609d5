//! The supervisor of a detached sandbox: `sbx start --detach` spawns `sbx start --supervise`
//! in a session of its own, hands it the spec and the secrets through a pipe, and waits until the
//! sandbox runs its command. The supervisor runs the proxy and the sandbox and exits when the
//! sandbox does (see the module docs of [`crate::launch`]).
//!
//! It records itself in `<state>/sandboxes/<name>/supervisor.json` so `sbx stop` and `sbx rm`
//! can wait for it (and the proxy) to be gone.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use miette::{IntoDiagnostic, miette};
use sbx_sandbox::state::process_start_time;
use sbx_sandbox::{Outcome, SandboxSpec, Sandboxes};
use serde::{Deserialize, Serialize};

use super::proxy::RunningProxy;
use super::secrets::ResolvedSecret;
use crate::project::Project;

/// What the supervisor reads on stdin.
#[derive(Serialize, Deserialize)]
pub struct Handoff {
    /// The spec to start (attached, from the supervisor's point of view).
    pub spec: SandboxSpec,
    /// The secrets (the proxy needs the real values of injected ones).
    pub secrets: Vec<ResolvedSecret>,
}

/// The supervisor's pid record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SupervisorRecord {
    /// Its pid.
    pub pid: u32,
    /// Its start time, to tell pid reuse apart.
    pub start: Option<u64>,
}

impl SupervisorRecord {
    /// Whether that process still runs.
    pub fn alive(&self) -> bool {
        self.start.is_some() && process_start_time(self.pid) == self.start
    }
}

fn record_path(sandboxes: &Sandboxes, name: &str) -> PathBuf {
    sandboxes.store().dir(name).join("supervisor.json")
}

/// Reads the supervisor record of `name`, if any.
pub fn read_record(sandboxes: &Sandboxes, name: &str) -> Option<SupervisorRecord> {
    let bytes = std::fs::read(record_path(sandboxes, name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Waits up to `timeout` for the supervisor of `name` to exit; kills it after that.
pub fn wait_gone(sandboxes: &Sandboxes, name: &str, timeout: Duration) {
    let Some(rec) = read_record(sandboxes, name) else { return };
    let deadline = Instant::now() + timeout;
    while rec.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if rec.alive()
        && let Ok(pid) = i32::try_from(rec.pid)
    {
        // SAFETY: kill(2) on the pid we recorded, checked against its start time just above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Spawns the supervisor for `handoff` and waits until the sandbox runs its command.
pub fn spawn(project: &Project, sandboxes: &Sandboxes, handoff: &Handoff) -> miette::Result<u32> {
    let name = handoff.spec.name.clone();
    let dir = sandboxes.store().dir(&name);
    std::fs::create_dir_all(&dir).map_err(|e| miette!("cannot create {}: {e}", dir.display()))?;
    let log_path = dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path).map_err(|e| miette!("cannot create {}: {e}", log_path.display()))?;
    let log2 = log.try_clone().into_diagnostic()?;
    let exe = std::env::current_exe().into_diagnostic()?;
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .envs(&project.env)
        .arg("-C")
        .arg(&project.root)
        .args(["--quiet", "start", "--supervise", "--name", &name])
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; a new session keeps the terminal's signals away.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| miette!("cannot start the sandbox supervisor: {e}"))?;
    let json = serde_json::to_vec(handoff).into_diagnostic()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&json).into_diagnostic()?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(miette!(
                help = format!("the supervisor's log is {}", log_path.display()),
                "sandbox `{name}` stopped while starting ({status}):\n{}",
                log.trim()
            ));
        }
        if sandboxes.is_ready(&name) {
            return Ok(child.id());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(miette!(
                help = format!("see {}", log_path.display()),
                "sandbox `{name}` did not start within 120 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The supervisor itself: reads the handoff, runs proxy and sandbox, returns the exit code.
pub fn serve(project: &Project, sandboxes: &Sandboxes, name: &str) -> miette::Result<i32> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).into_diagnostic()?;
    let Handoff { mut spec, secrets } =
        serde_json::from_slice(&input).map_err(|e| miette!("the supervisor's input is unreadable: {e}"))?;
    if spec.name != name {
        return Err(miette!("the supervisor was started for `{name}` but got `{}`", spec.name));
    }
    let me = std::process::id();
    let rec = SupervisorRecord { pid: me, start: process_start_time(me) };
    let path = record_path(sandboxes, name);
    std::fs::write(&path, serde_json::to_vec(&rec).into_diagnostic()?)
        .map_err(|e| miette!("cannot write {}: {e}", path.display()))?;
    let proxy = RunningProxy::start(project, name, &sandboxes.store().dir(name), &secrets)?;
    attach_proxy(&mut spec, &proxy);
    spec.detach = false;
    spec.tty = false;
    let result = sandboxes.start(&spec, &mut |_| {});
    proxy.stop();
    let _ = std::fs::remove_file(&path);
    match result.map_err(miette::Report::new)? {
        Outcome::Exited(code) => Ok(code),
        Outcome::Detached(_) => Ok(0),
    }
}

/// Points `spec` at the running proxy (and its CA when a credential is injected).
pub fn attach_proxy(spec: &mut SandboxSpec, proxy: &RunningProxy) {
    spec.proxy_socket = Some(proxy.paths.socket.clone());
    spec.ca_pem = proxy.injects.then(|| proxy.paths.ca.clone());
}
