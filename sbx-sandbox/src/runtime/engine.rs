//! `docker` and `podman`: the sandbox as a container of an engine the user already runs.
//!
//! The built image is converted once per manifest digest ([`super::engine_image`]: setuid bits,
//! devices and xattrs dropped, as sbx's unpacker does), loaded with `load`, and run by its image
//! id (`sha256:…`), never by a tag. The container gets: no network (`--network none`: loopback
//! only; the proxy's socket directory is bind-mounted and `sbx-init` relays 127.0.0.1:3128 to
//! it, as on every runtime), `--cap-drop ALL`, `no-new-privileges`, sbx's seccomp profile in
//! place of the engine's default (the same rules as the bwrap runtime, plus a few), a read-only
//! root with tmpfs `/tmp` and home, the workspace owner's uid:gid, only the plan's mounts, and an
//! environment built from nothing (passed through an inherited descriptor, never argv or a
//! file). With Docker, `--runtime runsc` is added when the daemon has gVisor registered.
//!
//! The engine CLI itself runs with a cleared environment plus the variables that select and
//! configure the engine (`DOCKER_HOST`, `CONTAINERS_CONF`, …; see [`PASSTHROUGH`]).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::engine_args::{self, EngineKind, Files, RunOptions};
use super::engine_image;
use super::{Launch, Runtime, RuntimeKind, Unavailable, find_binary};
use crate::error::{Error, Result};
use crate::spec::LaunchPlan;

/// Host variables the engine CLI keeps (they choose the daemon, its TLS, podman's storage).
pub const PASSTHROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_API_VERSION",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
];

/// File in the sandbox's state dir holding the image id the sandbox runs.
const IMAGE_FILE: &str = "engine-image";

/// The docker runtime.
#[derive(Debug, Default, Clone)]
pub struct Docker;

/// The podman runtime.
#[derive(Debug, Default, Clone)]
pub struct Podman;

fn binary(kind: EngineKind) -> std::result::Result<PathBuf, Unavailable> {
    find_binary(kind.binary()).ok_or_else(|| Unavailable {
        reason: format!("the `{}` binary is not on PATH", kind.binary()),
        help: match kind {
            EngineKind::Docker => "install Docker (Debian: `apt-get install docker.io`) and start dockerd".into(),
            EngineKind::Podman => "install podman (Debian: `apt-get install podman`)".into(),
        },
    })
}

fn runtime_kind(kind: EngineKind) -> RuntimeKind {
    match kind {
        EngineKind::Docker => RuntimeKind::Docker,
        EngineKind::Podman => RuntimeKind::Podman,
    }
}

/// The engine CLI with a cleared environment plus [`PASSTHROUGH`].
pub fn cli(kind: EngineKind) -> Result<Command> {
    let bin = binary(kind).map_err(|u| u.into_error(runtime_kind(kind)))?;
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    for var in PASSTHROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    Ok(cmd)
}

/// Runs a short engine command; its trimmed stdout, or its stderr as the error.
fn output(kind: EngineKind, args: &[&str]) -> std::result::Result<String, String> {
    let mut cmd = cli(kind).map_err(|e| e.to_string())?;
    cmd.args(args).stdin(Stdio::null());
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The container name: the sandbox name plus a hash of its state dir (two state dirs may hold
/// sandboxes of the same name; the engine's names are global).
pub fn container_name(plan: &LaunchPlan) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(plan.state_dir.as_os_str().as_encoded_bytes()));
    format!("sbx-{}-{}", plan.name, &hash[..8])
}

/// Whether Docker has gVisor registered as a runtime named `runsc`.
pub fn docker_has_runsc() -> bool {
    output(EngineKind::Docker, &["info", "--format", "{{json .Runtimes}}"]).is_ok_and(|r| r.contains("\"runsc\""))
}

fn available(kind: EngineKind) -> std::result::Result<(), Unavailable> {
    binary(kind)?;
    let probe: &[&str] = match kind {
        EngineKind::Docker => &["version", "--format", "{{.Server.Version}}"],
        EngineKind::Podman => &["info", "--format", "{{.Version.Version}}"],
    };
    output(kind, probe).map(|_| ()).map_err(|e| Unavailable {
        reason: format!("`{} {}` failed: {e}", kind.binary(), probe[0]),
        help: match kind {
            EngineKind::Docker => "start dockerd, or point DOCKER_HOST at a running daemon".into(),
            EngineKind::Podman => "check `podman info` (storage and runtime configuration)".into(),
        },
    })
}

/// An anonymous memory file holding `bytes` (close-on-exec; the launch lets the child inherit it).
fn memfd(bytes: &[u8]) -> Result<OwnedFd> {
    // SAFETY: the name is a valid C string; the flags are constants.
    let fd = unsafe { libc::memfd_create(c"sbx-engine".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("creating a memfd", "memfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = fs::File::from(owned.try_clone().map_err(Error::io("duplicating a memfd", "memfd"))?);
    file.write_all(bytes).map_err(Error::io("writing a memfd", "memfd"))?;
    Ok(owned)
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/dev/fd/{}", fd.as_raw_fd())
}

/// Loads the image of `layout` into the engine (once per manifest digest) and returns its id.
pub fn load_image(kind: EngineKind, layout: &Path, cache_dir: &Path) -> Result<String> {
    let dir = cache_dir.join("engine-images");
    let has = |id: &str| output(kind, &["image", "inspect", "--format", "{{.Id}}", id]).is_ok();
    if let Some(done) = engine_image::existing_archive(layout, &dir)
        && has(&done.image_id)
    {
        return Ok(done.image_id);
    }
    let archive = engine_image::write_archive(layout, &dir)?;
    let mut cmd = cli(kind)?;
    cmd.arg("load").arg("--input").arg(&archive.path).stdin(Stdio::null());
    let out = cmd.output().map_err(Error::io("running the engine's image load", &archive.path))?;
    if !out.status.success() || !has(&archive.image_id) {
        return Err(Error::RuntimeUnavailable {
            runtime: kind.binary().into(),
            reason: format!(
                "loading {} did not give image {}: {}",
                archive.path.display(),
                archive.image_id,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            help: format!("run `{} load --input {}` by hand to see why", kind.binary(), archive.path.display()),
        });
    }
    // The engine has its own copy now; the record keeps the id.
    let _ = fs::remove_file(&archive.path);
    Ok(archive.image_id)
}

fn image_of(plan: &LaunchPlan) -> Result<String> {
    let path = plan.state_dir.join(IMAGE_FILE);
    fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(Error::io("reading the sandbox's image id", path))
}

fn launch(kind: EngineKind, plan: &LaunchPlan) -> Result<Launch> {
    let env = memfd(engine_args::env_file(plan)?.as_bytes())?;
    let seccomp = memfd(engine_args::seccomp_profile().as_bytes())?;
    let files = Files { env_file: fd_path(&env), seccomp: fd_path(&seccomp) };
    let opts = RunOptions {
        kind,
        container: container_name(plan),
        image: image_of(plan)?,
        runsc: kind == EngineKind::Docker && docker_has_runsc(),
        interactive: !plan.detach,
    };
    let mut cmd = cli(kind)?;
    cmd.args(engine_args::run_args(plan, &opts, &files)?);
    let keep = vec![env, seccomp];
    super::bwrap::inherit_fds(&mut cmd, &keep);
    Ok(Launch { command: cmd, keep })
}

fn exec(kind: EngineKind, plan: &LaunchPlan, argv: &[String], tty: bool) -> Result<Launch> {
    let env = memfd(engine_args::env_file(plan)?.as_bytes())?;
    let mut cmd = cli(kind)?;
    cmd.args(engine_args::exec_args(plan, &container_name(plan), &fd_path(&env), argv, tty));
    let keep = vec![env];
    super::bwrap::inherit_fds(&mut cmd, &keep);
    Ok(Launch { command: cmd, keep })
}

fn quiet(kind: EngineKind, args: &[&str]) {
    if let Ok(mut cmd) = cli(kind) {
        let _ = cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

fn raw(kind: EngineKind, rootfs: &Path, argv: &[&str]) -> Command {
    let mut cmd = cli(kind).unwrap_or_else(|_| Command::new(kind.binary()));
    cmd.args(["run", "--rm", "--network", "none"]);
    match kind {
        EngineKind::Podman => {
            cmd.arg("--rootfs").arg(rootfs).args(argv);
        }
        EngineKind::Docker => {
            // rootfs = <cache>/rootfs/<hex>/rootfs; the loaded image's record sits in <cache>/engine-images.
            let entry = rootfs.parent();
            let hex = entry.and_then(Path::file_name).map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
            let cache = entry.and_then(Path::parent).and_then(Path::parent).unwrap_or(Path::new("/"));
            let record = cache.join("engine-images").join(format!("{hex}.json"));
            let image = fs::read(&record)
                .ok()
                .and_then(|b| serde_json::from_slice::<engine_image::EngineArchive>(&b).ok())
                .map_or_else(|| format!("sha256:{hex}"), |a| a.image_id);
            let (first, rest) = argv.split_first().map_or(("true", &[][..]), |(f, r)| (*f, r));
            cmd.args(["--entrypoint", first, &image]).args(rest);
        }
    }
    cmd
}

/// The `docker run …` / `podman run …` line `sbx start` runs for `plan` (the env file and
/// seccomp profile shown as the descriptors they are passed through), for `--dry-run`.
pub fn render_run(kind: RuntimeKind, plan: &LaunchPlan, image: &str) -> Option<String> {
    let engine = match kind {
        RuntimeKind::Docker => EngineKind::Docker,
        RuntimeKind::Podman => EngineKind::Podman,
        _ => return None,
    };
    let opts = RunOptions {
        kind: engine,
        container: container_name(plan),
        image: image.to_string(),
        runsc: engine == EngineKind::Docker && docker_has_runsc(),
        interactive: !plan.detach,
    };
    let files = Files { env_file: "/dev/fd/3".into(), seccomp: "/dev/fd/4".into() };
    let args: Vec<OsString> = engine_args::run_args(plan, &opts, &files).ok()?;
    Some(engine_args::render(engine.binary(), &args))
}

macro_rules! engine_runtime {
    ($ty:ident, $kind:expr, $rk:expr) => {
        impl Runtime for $ty {
            fn kind(&self) -> RuntimeKind {
                $rk
            }

            fn available(&self) -> std::result::Result<(), Unavailable> {
                available($kind)
            }

            fn trial(&self) -> std::result::Result<(), Unavailable> {
                available($kind)
            }

            fn warning(&self) -> Option<&'static str> {
                match $kind {
                    EngineKind::Docker if !docker_has_runsc() => Some(
                        "note: the docker runtime isolates with namespaces, seccomp and no capabilities on the host \
                         kernel (for a user-space kernel register gVisor with Docker as `runsc`, runtimeArgs \
                         [\"--network=none\", \"--host-uds=open\"] in daemon.json)",
                    ),
                    EngineKind::Docker => None,
                    EngineKind::Podman => Some(
                        "note: the podman runtime isolates with namespaces, seccomp and no capabilities on the host \
                         kernel (the gvisor runtime gives a user-space kernel)",
                    ),
                }
            }

            fn prepare_image(&self, layout: &Path, cache_dir: &Path, plan: &LaunchPlan) -> Result<()> {
                let id = load_image($kind, layout, cache_dir)?;
                // A container left by a killed run would block the name.
                quiet($kind, &["rm", "--force", &container_name(plan)]);
                let path = plan.state_dir.join(IMAGE_FILE);
                fs::write(&path, &id).map_err(Error::io("recording the sandbox's image id", path))
            }

            fn launch(&self, plan: &LaunchPlan) -> Result<Launch> {
                launch($kind, plan)
            }

            fn exec(&self, plan: &LaunchPlan, _pid: u32, argv: &[String], tty: bool) -> Result<Launch> {
                exec($kind, plan, argv, tty)
            }

            fn signal(&self, plan: &LaunchPlan, _pid: u32, sig: i32) -> Result<()> {
                quiet($kind, &["kill", "--signal", &sig.to_string(), &container_name(plan)]);
                Ok(())
            }

            fn ready(&self, plan: &LaunchPlan, _pid: u32) -> bool {
                output($kind, &["inspect", "--format", "{{.State.Running}}", &container_name(plan)])
                    .is_ok_and(|s| s == "true")
            }

            fn kill(&self, plan: &LaunchPlan, _pid: u32) -> Result<()> {
                quiet($kind, &["kill", &container_name(plan)]);
                Ok(())
            }

            fn cleanup(&self, plan: &LaunchPlan) {
                quiet($kind, &["rm", "--force", &container_name(plan)]);
            }

            fn raw_command(&self, rootfs: &Path, argv: &[&str]) -> Command {
                raw($kind, rootfs, argv)
            }
        }
    };
}

engine_runtime!(Docker, EngineKind::Docker, RuntimeKind::Docker);
engine_runtime!(Podman, EngineKind::Podman, RuntimeKind::Podman);
