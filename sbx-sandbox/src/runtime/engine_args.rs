//! The argv sbx gives `docker` / `podman` for a [`LaunchPlan`], the seccomp profile it loads
//! and the environment file it passes. Pure functions, so `--dry-run` prints exactly what runs.

use std::ffi::OsString;

use crate::error::{Error, Result};
use crate::seccomp;
use crate::spec::LaunchPlan;

/// Which container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Docker (`dockerd`).
    Docker,
    /// Podman (daemonless).
    Podman,
}

impl EngineKind {
    /// The CLI's name.
    pub fn binary(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
}

/// Label put on every container sbx starts (value: the sandbox name).
pub const SANDBOX_LABEL: &str = "dev.sbx.sandbox";

/// Syscalls denied in engine containers on top of the bwrap list: ones the engines' default
/// profiles refuse and that sbx's own list leaves to the missing capabilities.
const EXTRA_DENIED: &[&str] = &["kcmp", "lookup_dcookie", "move_pages", "pidfd_getfd", "process_madvise"];

/// The seccomp profile (the engines' JSON format) with the same rules as the bwrap runtime's
/// BPF filter: the denied syscalls fail with `EPERM`, `clone` with a namespace flag fails,
/// `clone3` fails with `ENOSYS` (libc falls back to `clone`), `AF_PACKET` sockets and the
/// terminal-injection ioctls fail. It replaces the engine's default profile.
pub fn seccomp_profile() -> String {
    let mut denied: Vec<&str> = seccomp::denied_syscalls().chain(EXTRA_DENIED.iter().copied()).collect();
    denied.sort_unstable();
    denied.dedup();
    let errno = |names: serde_json::Value, ret: i32| serde_json::json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": ret});
    let mut rules =
        vec![errno(serde_json::json!(denied), libc::EPERM), errno(serde_json::json!(["clone3"]), libc::ENOSYS)];
    let flags = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    for flag in flags {
        let mut rule = errno(serde_json::json!(["clone"]), libc::EPERM);
        rule["args"] = serde_json::json!([{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]);
        rules.push(rule);
    }
    let mut packet = errno(serde_json::json!(["socket"]), libc::EPERM);
    packet["args"] = serde_json::json!([{"index": 0, "value": libc::AF_PACKET, "op": "SCMP_CMP_EQ"}]);
    rules.push(packet);
    for ioctl in [libc::TIOCSTI, libc::TIOCLINUX] {
        let mut rule = errno(serde_json::json!(["ioctl"]), libc::EPERM);
        rule["args"] = serde_json::json!([{"index": 1, "value": ioctl, "op": "SCMP_CMP_EQ"}]);
        rules.push(rule);
    }
    let profile = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
    serde_json::to_string_pretty(&profile).unwrap_or_default()
}

/// The `--env-file` content (`KEY=VALUE` lines). Values with a newline or NUL cannot be
/// expressed in that format and are refused.
pub fn env_file(plan: &LaunchPlan) -> Result<String> {
    let mut out = String::new();
    for (k, v) in &plan.env {
        if k.is_empty() || k.contains(['=', '\n', '\0']) || v.contains(['\n', '\0']) {
            return Err(Error::Spec(format!(
                "variable `{k}` cannot be passed to a container engine (its name or value has a newline, `=` or NUL)"
            )));
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    Ok(out)
}

/// Where the engine gets the env file and seccomp profile from (inherited descriptors when
/// running, placeholders when printing a dry run).
#[derive(Debug, Clone)]
pub struct Files {
    /// Path of the env file (`/dev/fd/N`).
    pub env_file: String,
    /// Path of the seccomp profile (`/dev/fd/N`).
    pub seccomp: String,
}

/// Options that are not part of the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The engine.
    pub kind: EngineKind,
    /// The container name.
    pub container: String,
    /// The image id (`sha256:…`).
    pub image: String,
    /// `--runtime runsc` (Docker with gVisor registered).
    pub runsc: bool,
    /// Keep standard input open (attached runs).
    pub interactive: bool,
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

fn mount_arg(source: &std::path::Path, dest: &std::path::Path, writable: bool) -> Result<OsString> {
    let (s, d) = (source.to_string_lossy(), dest.to_string_lossy());
    // `--mount` is comma separated: a path with a comma cannot be expressed safely.
    if s.contains(',') || d.contains(',') {
        return Err(Error::Spec(format!("path {s} cannot be mounted by a container engine (it contains a comma)")));
    }
    let ro = if writable { "" } else { ",readonly" };
    Ok(format!("type=bind,source={s},target={d}{ro}").into())
}

/// The complete argv after the engine binary for `run`.
pub fn run_args(plan: &LaunchPlan, opts: &RunOptions, files: &Files) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = Vec::new();
    push(&mut a, &["run", "--rm", "--name", &opts.container, "--label"]);
    a.push(format!("{SANDBOX_LABEL}={}", plan.name).into());
    push(&mut a, &["--hostname", &plan.hostname, "--network", "none", "--cap-drop", "ALL"]);
    push(&mut a, &["--security-opt", "no-new-privileges"]);
    a.push("--security-opt".into());
    a.push(format!("seccomp={}", files.seccomp).into());
    if opts.runsc {
        push(&mut a, &["--runtime", "runsc"]);
    }
    push(&mut a, &["--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777"]);
    a.push("--tmpfs".into());
    let home_opts = match opts.kind {
        EngineKind::Docker => format!("{}:rw,nosuid,nodev,mode=0700,uid={},gid={}", plan.home, plan.uid, plan.gid),
        // podman refuses uid=/gid=; `U` chowns the tmpfs to the container user instead.
        EngineKind::Podman => format!("{}:rw,nosuid,nodev,mode=0700,U", plan.home),
    };
    a.push(home_opts.into());
    a.push("--user".into());
    a.push(format!("{}:{}", plan.uid, plan.gid).into());
    a.push("--workdir".into());
    a.push(plan.cwd.clone().into());
    push(&mut a, &["--env-file", &files.env_file]);
    for m in &plan.mounts {
        a.push("--mount".into());
        a.push(mount_arg(&m.source, &m.dest, m.writable)?);
    }
    if opts.interactive {
        a.push("--interactive".into());
    }
    if plan.tty {
        a.push("--tty".into());
    }
    let (init, rest) = plan.argv.split_first().ok_or_else(|| Error::Spec("empty command".into()))?;
    push(&mut a, &["--entrypoint", init, &opts.image]);
    a.extend(rest.iter().map(OsString::from));
    Ok(a)
}

/// The argv after the engine binary for `exec` of `argv` in the running container.
pub fn exec_args(plan: &LaunchPlan, container: &str, env_file: &str, argv: &[String], tty: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    push(&mut a, &["exec", "--interactive"]);
    if tty {
        a.push("--tty".into());
    }
    a.push("--user".into());
    a.push(format!("{}:{}", plan.uid, plan.gid).into());
    a.push("--workdir".into());
    a.push(plan.cwd.clone().into());
    push(&mut a, &["--env-file", env_file, container]);
    a.extend(argv.iter().map(OsString::from));
    a
}

/// Quotes one argument for printing a command a person can paste into a POSIX shell.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if safe { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// Renders `program args…` as one shell-quoted line.
pub fn render(program: &str, args: &[OsString]) -> String {
    std::iter::once(program.to_string())
        .chain(args.iter().map(|a| shell_quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_denies_what_bwrap_denies() {
        let p: serde_json::Value = serde_json::from_str(&seccomp_profile()).unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        let names = p["syscalls"][0]["names"].as_array().unwrap();
        for s in ["ptrace", "unshare", "mount", "bpf", "io_uring_setup", "kcmp"] {
            assert!(names.iter().any(|n| n == s), "{s} not denied");
        }
        assert_eq!(p["syscalls"][1]["errnoRet"], libc::ENOSYS);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("/x/y:ro"), "/x/y:ro");
        assert_eq!(shell_quote(""), "''");
    }
}
