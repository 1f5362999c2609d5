//! gVisor (`runsc`): the sandbox talks to a user-space kernel, not the host's. On these machines
//! only `--platform=ptrace` works; `--network=none` leaves loopback only.
//!
//! runsc's gofer creates mount points inside the root it is given, so the shared rootfs is never
//! handed to it directly: runsc runs in a private mount namespace where the rootfs is the lower
//! layer of an overlay whose upper layer is a per-sandbox tmpfs (gone when the sandbox ends).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::{Launch, Runtime, RuntimeKind, Unavailable, find_binary, run_trial};
use crate::error::{Error, Result};
use crate::spec::LaunchPlan;

/// The gVisor runtime.
#[derive(Debug, Default, Clone)]
pub struct Gvisor;

const GLOBAL_FLAGS: &[&str] = &["--platform=ptrace", "--network=none", "--ignore-cgroups", "--host-uds=open"];

fn runsc_binary() -> std::result::Result<PathBuf, Unavailable> {
    find_binary("runsc").ok_or_else(|| Unavailable {
        reason: "the `runsc` binary is not on PATH".into(),
        help: "install gVisor (Debian: `apt-get install runsc`)".into(),
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The runsc container id: the name plus a hash of the state dir, since runsc's control socket
/// is host-global (two state dirs with a sandbox of the same name must not collide).
fn container_id(plan: &LaunchPlan) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(plan.state_dir.as_os_str().as_encoded_bytes()));
    format!("sbx-{}-{}", plan.name, &hash[..8])
}

fn runsc(plan: &LaunchPlan) -> Result<Command> {
    let bin = runsc_binary().map_err(|u| u.into_error(RuntimeKind::Gvisor))?;
    let mut cmd = Command::new(bin);
    cmd.env_clear().args(GLOBAL_FLAGS).arg("--root").arg(plan.state_dir.join("runsc"));
    Ok(cmd)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| Error::Spec(format!("OCI mount {dest}: {e}")))
}

/// The OCI runtime config for `plan`, rooted at `root`.
pub fn oci_config(plan: &LaunchPlan, root: &Path) -> Result<Spec> {
    let oci = |e: oci_spec::OciSpecError| Error::Spec(format!("OCI config: {e}"));
    let none = Capabilities::new();
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(none.clone())
        .effective(none.clone())
        .inheritable(none.clone())
        .permitted(none.clone())
        .ambient(none)
        .build()
        .map_err(oci)?;
    let user =
        UserBuilder::default().uid(plan.uid).gid(plan.gid).additional_gids(vec![plan.gid]).build().map_err(oci)?;
    let process = ProcessBuilder::default()
        .terminal(plan.tty)
        .user(user)
        .args(plan.argv.clone())
        .env(plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())
        .cwd(plan.cwd.clone())
        .capabilities(caps)
        .no_new_privileges(true)
        .build()
        .map_err(oci)?;
    let home_opts = format!("mode=700,uid={},gid={}", plan.uid, plan.gid);
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"])?,
        mount(&plan.home, "tmpfs", "tmpfs", &home_opts.split(',').collect::<Vec<_>>())?,
    ];
    for m in &plan.mounts {
        let source = m.source.to_string_lossy();
        let dest = m.dest.to_string_lossy();
        mounts.push(mount(
            &dest,
            "bind",
            &source,
            &["rbind", "nosuid", "nodev", if m.writable { "rw" } else { "ro" }],
        )?);
    }
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(oci)?;
    let linux = LinuxBuilder::default().namespaces(namespaces).build().map_err(oci)?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(root).readonly(true).build().map_err(oci)?)
        .hostname(plan.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(oci)
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Spec(format!("path {} contains NUL", p.display())))
}

/// Makes runsc's child see `root` as an overlay of `lower` and a fresh tmpfs (private mount ns).
fn overlay_root(cmd: &mut Command, lower: &Path, scratch: &Path, root: &Path) -> Result<()> {
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    let (scratch_c, upper_c, work_c, root_c) = (cstr(scratch)?, cstr(&upper)?, cstr(&work)?, cstr(root)?);
    let opts_c = CString::new(opts).map_err(|_| Error::Spec("overlay options contain NUL".into()))?;
    let mode = c"mode=700";
    // SAFETY: only async-signal-safe syscalls on pre-built C strings.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: i32| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(c"tmpfs".as_ptr(), scratch_c.as_ptr(), c"tmpfs".as_ptr(), 0, mode.as_ptr().cast()))?;
            check(libc::mkdir(upper_c.as_ptr(), 0o755))?;
            check(libc::mkdir(work_c.as_ptr(), 0o700))?;
            check(libc::mount(c"overlay".as_ptr(), root_c.as_ptr(), c"overlay".as_ptr(), 0, opts_c.as_ptr().cast()))?;
            Ok(())
        });
    }
    Ok(())
}

impl Runtime for Gvisor {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Gvisor
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        runsc_binary()?;
        if !is_root() {
            return Err(Unavailable {
                reason: "sbx runs gVisor as root only for now (it mounts a per-sandbox overlay for runsc)".into(),
                help: "use `runtime = \"bwrap\"`, or run sbx as root".into(),
            });
        }
        if !fs::read_to_string("/proc/filesystems").unwrap_or_default().contains("overlay") {
            return Err(Unavailable {
                reason: "the kernel has no overlayfs".into(),
                help: "load it: `modprobe overlay`".into(),
            });
        }
        Ok(())
    }

    fn trial(&self) -> std::result::Result<(), Unavailable> {
        self.available()?;
        let dir = tempfile::tempdir().map_err(|e| Unavailable { reason: e.to_string(), help: String::new() })?;
        let mut cmd = Command::new(runsc_binary()?);
        cmd.args(GLOBAL_FLAGS).arg("--root").arg(dir.path()).args(["do", "true"]);
        run_trial(cmd, "a runsc trial run (`runsc --platform=ptrace --network=none do true`)")
    }

    fn launch(&self, plan: &LaunchPlan) -> Result<Launch> {
        let bundle = plan.state_dir.join("bundle");
        let root = plan.state_dir.join("root");
        let scratch = plan.state_dir.join("scratch");
        for d in [&bundle, &root, &scratch, &plan.state_dir.join("runsc")] {
            fs::create_dir_all(d).map_err(Error::io("creating the gVisor bundle", d))?;
        }
        let spec = oci_config(plan, &root)?;
        let config = bundle.join("config.json");
        spec.save(&config).map_err(|e| Error::Spec(format!("writing {}: {e}", config.display())))?;
        let mut cmd = runsc(plan)?;
        cmd.arg("run").arg("--bundle").arg(&bundle).arg(container_id(plan));
        overlay_root(&mut cmd, &plan.rootfs, &scratch, &root)?;
        Ok(Launch { command: cmd, keep: Vec::new() })
    }

    fn exec(&self, plan: &LaunchPlan, _pid: u32, argv: &[String], tty: bool) -> Result<Launch> {
        let mut cmd = runsc(plan)?;
        cmd.arg("exec").arg("--user").arg(format!("{}:{}", plan.uid, plan.gid)).arg("--cwd").arg(&plan.cwd);
        for (k, v) in &plan.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg(container_id(plan)).args(argv);
        Ok(Launch { command: cmd, keep: Vec::new() })
    }

    fn signal(&self, plan: &LaunchPlan, _pid: u32, sig: i32) -> Result<()> {
        let mut cmd = runsc(plan)?;
        cmd.args(["kill", &container_id(plan), &sig.to_string()]);
        let _ = cmd.output();
        Ok(())
    }

    /// gVisor's terminal is its own: the resize is not seen by its kernel, so every process of
    /// the container gets SIGWINCH (ignored by default; init does not handle it) and reads the
    /// new size from the host terminal.
    fn resized(&self, plan: &LaunchPlan, _pid: u32) {
        if let Ok(mut cmd) = runsc(plan) {
            cmd.args(["kill", "--all", &container_id(plan), &libc::SIGWINCH.to_string()]);
            let _ = cmd.output();
        }
    }

    fn ready(&self, plan: &LaunchPlan, _pid: u32) -> bool {
        let Ok(mut cmd) = runsc(plan) else { return false };
        cmd.args(["state", &container_id(plan)]);
        cmd.output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"running\""))
    }

    fn kill(&self, plan: &LaunchPlan, _pid: u32) -> Result<()> {
        let mut cmd = runsc(plan)?;
        cmd.args(["kill", "--all", &container_id(plan), "KILL"]);
        let _ = cmd.output();
        Ok(())
    }

    fn cleanup(&self, plan: &LaunchPlan) {
        // `runsc run` deletes its container when it exits normally; only leftovers need `delete`.
        let id = container_id(plan);
        let leftover = fs::read_dir(plan.state_dir.join("runsc"))
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains(&id)))
            .unwrap_or(false);
        if leftover && let Ok(mut cmd) = runsc(plan) {
            cmd.args(["delete", "--force", &container_id(plan)]);
            let _ = cmd.output();
        }
        let _ = fs::remove_dir_all(plan.state_dir.join("bundle"));
    }

    fn raw_command(&self, rootfs: &Path, argv: &[&str]) -> Command {
        let bin = runsc_binary().map(|b| b.into_os_string()).unwrap_or_else(|_| "runsc".into());
        let mut cmd = Command::new(bin);
        cmd.args(["--platform=ptrace", "--network=none", "--ignore-cgroups", "do", "--root"]).arg(rootfs).args(argv);
        cmd
    }
}
