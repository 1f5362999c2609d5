//! Runtimes behind one trait (one file each), the `auto` choice and `doctor`.

mod bwrap;
pub mod engine;
pub mod engine_args;
pub mod engine_image;
mod gvisor;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use bwrap::Bwrap;
pub use engine::{Docker, Podman};
pub use gvisor::Gvisor;

use crate::error::{Error, Result};
use crate::spec::LaunchPlan;

/// The runtime a user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// The strongest runtime that works here.
    #[default]
    Auto,
    /// gVisor (`runsc`): a user-space kernel.
    Gvisor,
    /// bubblewrap namespaces + seccomp.
    Bwrap,
    /// A docker container (only when named; `auto` never picks it).
    Docker,
    /// A podman container (only when named; `auto` never picks it).
    Podman,
}

impl FromStr for RuntimeChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(RuntimeChoice::Auto),
            "gvisor" | "runsc" => Ok(RuntimeChoice::Gvisor),
            "bwrap" | "bubblewrap" => Ok(RuntimeChoice::Bwrap),
            "docker" => Ok(RuntimeChoice::Docker),
            "podman" => Ok(RuntimeChoice::Podman),
            other => Err(Error::UnknownRuntime(other.to_string())),
        }
    }
}

/// A concrete runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// gVisor.
    Gvisor,
    /// bubblewrap.
    Bwrap,
    /// A docker container.
    Docker,
    /// A podman container.
    Podman,
}

impl RuntimeKind {
    /// All runtimes `auto` chooses from, strongest boundary first.
    pub const ALL: [RuntimeKind; 2] = [RuntimeKind::Gvisor, RuntimeKind::Bwrap];
    /// Container engines: used only when named.
    pub const ENGINES: [RuntimeKind; 2] = [RuntimeKind::Docker, RuntimeKind::Podman];

    /// The name users write in `.sbx.toml`.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Gvisor => "gvisor",
            RuntimeKind::Bwrap => "bwrap",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
        }
    }

    /// The implementation.
    pub fn runtime(self) -> Box<dyn Runtime> {
        match self {
            RuntimeKind::Gvisor => Box::new(Gvisor),
            RuntimeKind::Bwrap => Box::new(Bwrap),
            RuntimeKind::Docker => Box::new(Docker),
            RuntimeKind::Podman => Box::new(Podman),
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a runtime does not work here, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    /// What is missing or broken.
    pub reason: String,
    /// What the user can do.
    pub help: String,
}

impl Unavailable {
    /// Converts into the crate error for `kind`.
    pub fn into_error(self, kind: RuntimeKind) -> Error {
        Error::RuntimeUnavailable { runtime: kind.name().to_string(), reason: self.reason, help: self.help }
    }
}

/// A command ready to spawn, plus descriptors that must stay open until it has started.
pub struct Launch {
    /// The runtime invocation (environment already cleared and set).
    pub command: Command,
    /// Descriptors the child inherits (e.g. seccomp programs); dropped after spawn.
    pub keep: Vec<OwnedFd>,
}

/// One isolation technology.
pub trait Runtime: Send + Sync {
    /// Which runtime this is.
    fn kind(&self) -> RuntimeKind;
    /// Cheap check that the runtime can work here (binary and kernel features); no trial run.
    fn available(&self) -> std::result::Result<(), Unavailable>;
    /// Full check for `doctor`: [`Runtime::available`] plus a trial run of `/bin/true` from the host root.
    fn trial(&self) -> std::result::Result<(), Unavailable>;
    /// A note printed once when this runtime is chosen, if any.
    fn warning(&self) -> Option<&'static str> {
        None
    }
    /// Makes the image of `layout` usable before [`Runtime::launch`] (container engines load
    /// it into their store, caching under `cache_dir`); runtimes that run the unpacked rootfs
    /// need nothing.
    fn prepare_image(&self, _layout: &Path, _cache_dir: &Path, _plan: &LaunchPlan) -> Result<()> {
        Ok(())
    }
    /// Builds the invocation that runs `plan` in the foreground of the calling process.
    fn launch(&self, plan: &LaunchPlan) -> Result<Launch>;
    /// Builds an invocation running `argv` inside the running sandbox whose runtime process is `pid`.
    fn exec(&self, plan: &LaunchPlan, pid: u32, argv: &[String], tty: bool) -> Result<Launch>;
    /// Sends `signal` to the sandbox's init (which forwards it to the command); SIGTERM asks it to stop.
    fn signal(&self, plan: &LaunchPlan, pid: u32, signal: i32) -> Result<()>;
    /// Tells the sandbox that its terminal was resized (the caller already copied the new size
    /// to the sandbox's terminal). On the host kernel the kernel itself sends SIGWINCH to the
    /// terminal's foreground group, so the default does nothing.
    fn resized(&self, _plan: &LaunchPlan, _pid: u32) {}
    /// Whether the sandbox whose runtime process is `pid` runs its command yet (exec works).
    fn ready(&self, plan: &LaunchPlan, pid: u32) -> bool;
    /// Kills every process of the sandbox whose runtime process is `pid`.
    fn kill(&self, plan: &LaunchPlan, pid: u32) -> Result<()>;
    /// Removes what the runtime left in the sandbox's state dir after it exited.
    fn cleanup(&self, plan: &LaunchPlan);
    /// The bare runtime running `argv` on `rootfs` (the benchmark baseline).
    fn raw_command(&self, rootfs: &Path, argv: &[&str]) -> Command;
}

/// Finds `name` on `PATH`.
pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

pub(crate) fn run_trial(mut cmd: Command, what: &str) -> std::result::Result<(), Unavailable> {
    cmd.stdin(std::process::Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Unavailable {
            reason: format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            help: "run the command by hand to see the full error; check kernel support and permissions".into(),
        }),
        Err(e) => Err(Unavailable { reason: format!("{what} could not start: {e}"), help: String::new() }),
    }
}

/// Picks the runtime for `choice`: the named one if it works, else for `auto` the strongest that works.
pub fn select(choice: RuntimeChoice) -> Result<Box<dyn Runtime>> {
    let pick = |kind: RuntimeKind| {
        let rt = kind.runtime();
        rt.available().map(|()| rt)
    };
    match choice {
        RuntimeChoice::Gvisor => pick(RuntimeKind::Gvisor).map_err(|u| u.into_error(RuntimeKind::Gvisor)),
        RuntimeChoice::Bwrap => pick(RuntimeKind::Bwrap).map_err(|u| u.into_error(RuntimeKind::Bwrap)),
        RuntimeChoice::Docker => pick(RuntimeKind::Docker).map_err(|u| u.into_error(RuntimeKind::Docker)),
        RuntimeChoice::Podman => pick(RuntimeKind::Podman).map_err(|u| u.into_error(RuntimeKind::Podman)),
        RuntimeChoice::Auto => RuntimeKind::ALL.into_iter().find_map(|k| pick(k).ok()).ok_or(Error::NoRuntime),
    }
}

/// One line of `sbx doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorEntry {
    /// The runtime.
    pub runtime: RuntimeKind,
    /// `None` when it works, else why not.
    pub problem: Option<Unavailable>,
}

/// Checks every runtime with a trial run, strongest first, then the container engines.
pub fn doctor() -> Vec<DoctorEntry> {
    RuntimeKind::ALL
        .into_iter()
        .chain(RuntimeKind::ENGINES)
        .map(|kind| DoctorEntry { runtime: kind, problem: kind.runtime().trial().err() })
        .collect()
}
