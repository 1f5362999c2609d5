//! bubblewrap: user/pid/ipc/uts/net/mount namespaces, all capabilities dropped, nested user
//! namespaces disabled, a seccomp deny list, the image rootfs bound read-only onto a read-only
//! tmpfs root. The fastest runtime and the weaker boundary: a kernel bug is a host bug.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Launch, Runtime, RuntimeKind, Unavailable, find_binary, run_trial};
use crate::error::{Error, Result};
use crate::seccomp;
use crate::spec::LaunchPlan;

/// The bubblewrap runtime.
#[derive(Debug, Default, Clone)]
pub struct Bwrap;

fn bwrap_binary() -> std::result::Result<PathBuf, Unavailable> {
    find_binary("bwrap").ok_or_else(|| Unavailable {
        reason: "the `bwrap` binary is not on PATH".into(),
        help: "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`)".into(),
    })
}

fn userns_enabled() -> std::result::Result<(), Unavailable> {
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err(Unavailable {
            reason: "the kernel has user namespaces disabled (user.max_user_namespaces = 0)".into(),
            help: "enable them: `sysctl user.max_user_namespaces=15000`".into(),
        });
    }
    if fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone").is_ok_and(|v| v.trim() == "0")
        // SAFETY: geteuid has no preconditions.
        && unsafe { libc::geteuid() } != 0
    {
        return Err(Unavailable {
            reason: "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)".into(),
            help: "enable them: `sysctl kernel.unprivileged_userns_clone=1`".into(),
        });
    }
    Ok(())
}

/// Writes `bytes` to an anonymous memory file and returns its descriptor (close-on-exec; the
/// launch clears the flag in the child).
fn memfd(bytes: &[u8]) -> Result<OwnedFd> {
    // SAFETY: the name is a valid C string; the flags are constants.
    let fd = unsafe { libc::memfd_create(c"sbx-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("creating a memfd for the seccomp filter", "memfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = fs::File::from(owned.try_clone().map_err(Error::io("duplicating memfd", "memfd"))?);
    file.write_all(bytes).map_err(Error::io("writing the seccomp filter", "memfd"))?;
    // SAFETY: rewinding a descriptor we own.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(owned)
}

/// The two seccomp programs as inheritable descriptors.
pub(crate) fn seccomp_fds() -> Result<Vec<OwnedFd>> {
    Ok(vec![
        memfd(&seccomp::to_bytes(&seccomp::deny_filter()?))?,
        memfd(&seccomp::to_bytes(&seccomp::clone3_filter()?))?,
    ])
}

/// Lets the child inherit `fds` across exec.
pub(crate) fn inherit_fds(cmd: &mut Command, fds: &[OwnedFd]) {
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: fcntl is async-signal-safe; the descriptors stay open until after spawn.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &raw {
                if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Emits binds reproducing `rootfs` read-only, splitting directories that lie on the way to a
/// path in `splits` into tmpfs directories (so mount points can be created under them).
fn rootfs_args(rootfs: &Path, rel: &Path, splits: &[PathBuf], args: &mut Vec<OsString>) -> Result<()> {
    let dir = rootfs.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(Error::io("reading the rootfs", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    entries.sort();
    for name in entries {
        let child_rel = rel.join(&name);
        let host = rootfs.join(&child_rel);
        let dest = Path::new("/").join(&child_rel);
        let meta = fs::symlink_metadata(&host).map_err(Error::io("reading the rootfs", &host))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&host).map_err(Error::io("reading a symlink in the rootfs", &host))?;
            args.extend(["--symlink".into(), target.into_os_string(), dest.into_os_string()]);
        } else if meta.is_dir() && splits.iter().any(|s| s.starts_with(&dest) && s != &dest) {
            use std::os::unix::fs::PermissionsExt;
            let mode = format!("{:04o}", meta.permissions().mode() & 0o7777);
            args.extend(["--perms".into(), mode.into(), "--dir".into(), dest.into_os_string()]);
            rootfs_args(rootfs, &child_rel, splits, args)?;
        } else if meta.is_dir() || meta.is_file() {
            args.extend(["--ro-bind".into(), host.into_os_string(), dest.into_os_string()]);
        }
    }
    Ok(())
}

impl Bwrap {
    /// Arguments common to `launch` and `exec`-less runs: namespaces and the filesystem.
    fn args(&self, plan: &LaunchPlan, detached: bool) -> Result<Vec<OsString>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && plan.uid != 0 {
            return Err(Error::Spec(format!(
                "sbx runs as root but the project is owned by uid {}: bwrap maps only the caller into the \
                 sandbox, so the project would not be writable there; run sbx as that user, or use the \
                 gvisor runtime",
                plan.uid
            )));
        }
        let mut a: Vec<OsString> = Vec::new();
        let s = |v: &str| OsString::from(v);
        a.extend(["--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc", "--unshare-uts"].map(s));
        a.extend(["--unshare-net", "--unshare-cgroup-try", "--new-session", "--cap-drop", "ALL"].map(s));
        if !detached {
            a.push(s("--die-with-parent"));
        }
        let (uid, gid) = sandbox_ids(plan);
        a.extend([s("--uid"), uid.to_string().into(), s("--gid"), gid.to_string().into()]);
        a.extend([s("--hostname"), plan.hostname.clone().into()]);
        let mut splits: Vec<PathBuf> = plan.mounts.iter().map(|m| m.dest.clone()).collect();
        splits.push(PathBuf::from(&plan.home));
        splits.push(PathBuf::from("/tmp/x"));
        rootfs_args(&plan.rootfs, Path::new(""), &splits, &mut a)?;
        a.extend(["--proc", "/proc"].map(s));
        // bwrap leaves /proc/sys writable: when sbx runs as root, the sandbox user is the host's
        // root in disguise and could write global sysctls (core_pattern = host code execution).
        // The host's /proc/sys shows the reader's own namespaces, so a read-only bind is exact.
        a.extend(["--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try", "/proc/sysrq-trigger"].map(s));
        a.extend(["/proc/sysrq-trigger", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"].map(s));
        if plan.rootfs.join("var/tmp").is_dir() {
            a.extend(["--perms", "1777", "--tmpfs", "/var/tmp"].map(s));
        }
        a.extend([s("--perms"), s("0700"), s("--tmpfs"), plan.home.clone().into()]);
        for m in &plan.mounts {
            let flag = if m.writable { "--bind" } else { "--ro-bind" };
            a.extend([s(flag), m.source.clone().into(), m.dest.clone().into()]);
        }
        a.extend(["--remount-ro", "/", "--clearenv"].map(s));
        for (k, v) in &plan.env {
            a.extend([s("--setenv"), k.into(), v.into()]);
        }
        a.extend([s("--chdir"), plan.cwd.clone().into()]);
        Ok(a)
    }

    /// Builds the invocation; `detached` leaves out `--die-with-parent`.
    pub(crate) fn launch_with(&self, plan: &LaunchPlan, detached: bool) -> Result<Launch> {
        let bin = bwrap_binary().map_err(|u| u.into_error(RuntimeKind::Bwrap))?;
        let fds = seccomp_fds()?;
        let mut cmd = Command::new(bin);
        cmd.env_clear().args(self.args(plan, detached)?);
        for fd in &fds {
            cmd.arg("--add-seccomp-fd").arg(fd.as_raw_fd().to_string());
        }
        cmd.arg("--").args(&plan.argv);
        inherit_fds(&mut cmd, &fds);
        Ok(Launch { command: cmd, keep: fds })
    }
}

/// The ids inside the user namespace: the workspace owner's, except that root becomes 1000 (the
/// namespace maps it to the caller, so files keep working, but nothing inside is uid 0).
fn sandbox_ids(plan: &LaunchPlan) -> (u32, u32) {
    if plan.uid == 0 { (1000, if plan.gid == 0 { 1000 } else { plan.gid }) } else { (plan.uid, plan.gid) }
}

/// The pid of the first child of `pid` (bwrap's namespace init, whose namespaces we join).
fn first_child(pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: plain kill(2) on a pid we started.
        unsafe { libc::kill(pid, sig) };
    }
}

impl Runtime for Bwrap {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Bwrap
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        bwrap_binary()?;
        userns_enabled()
    }

    fn trial(&self) -> std::result::Result<(), Unavailable> {
        self.available()?;
        let mut cmd = Command::new(bwrap_binary()?);
        cmd.args(["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--ro-bind", "/", "/"])
            .args(["--proc", "/proc", "--dev", "/dev", "--cap-drop", "ALL", "true"]);
        run_trial(cmd, "a bwrap trial run")
    }

    fn warning(&self) -> Option<&'static str> {
        Some(
            "note: the bwrap runtime isolates with namespaces and seccomp on the host kernel; it is the weaker \
             boundary (install runsc for gVisor's user-space kernel)",
        )
    }

    fn launch(&self, plan: &LaunchPlan) -> Result<Launch> {
        self.launch_with(plan, plan.detach)
    }

    fn exec(&self, plan: &LaunchPlan, pid: u32, argv: &[String], tty: bool) -> Result<Launch> {
        let nsenter = find_binary("nsenter").ok_or_else(|| Error::RuntimeUnavailable {
            runtime: "bwrap".into(),
            reason: "`nsenter` is needed to enter a running bwrap sandbox".into(),
            help: "install util-linux".into(),
        })?;
        let target = first_child(pid).ok_or_else(|| Error::NotFound(plan.name.clone()))?;
        let fds = seccomp_fds()?;
        let mut cmd = Command::new(nsenter);
        cmd.env_clear().envs(&plan.env);
        cmd.arg("--target").arg(target.to_string());
        cmd.args(["--user", "--mount", "--pid", "--net", "--ipc", "--uts", "--root", "--wd"]);
        let (uid, gid) = sandbox_ids(plan);
        cmd.arg("--setuid").arg(uid.to_string()).arg("--setgid").arg(gid.to_string());
        cmd.arg("--").arg(crate::spec::INIT_PATH).arg("--drop-caps");
        for fd in &fds {
            cmd.arg("--seccomp-fd").arg(fd.as_raw_fd().to_string());
        }
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg("--").args(argv);
        inherit_fds(&mut cmd, &fds);
        Ok(Launch { command: cmd, keep: fds })
    }

    fn signal(&self, _plan: &LaunchPlan, pid: u32, sig: i32) -> Result<()> {
        // sbx-init is the only child of bwrap's namespace init; it forwards the signal to the command.
        if let Some(init) = first_child(pid).and_then(first_child) {
            signal(init, sig);
        }
        Ok(())
    }

    fn ready(&self, _plan: &LaunchPlan, pid: u32) -> bool {
        // bwrap → namespace init → sbx-init → the command.
        first_child(pid).and_then(first_child).and_then(first_child).is_some()
    }

    fn kill(&self, _plan: &LaunchPlan, pid: u32) -> Result<()> {
        // Killing a pid namespace's init kills every process in it; bwrap then exits.
        match first_child(pid) {
            Some(ns_init) => signal(ns_init, libc::SIGKILL),
            None => signal(pid, libc::SIGKILL),
        }
        Ok(())
    }

    fn cleanup(&self, _plan: &LaunchPlan) {}

    fn raw_command(&self, rootfs: &Path, argv: &[&str]) -> Command {
        let mut cmd = Command::new(bwrap_binary().map(|b| b.into_os_string()).unwrap_or_else(|_| "bwrap".into()));
        cmd.args(["--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind"])
            .arg(rootfs)
            .args(["/", "--proc", "/proc", "--dev", "/dev", "--"])
            .args(argv);
        cmd
    }
}
