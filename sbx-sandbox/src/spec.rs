//! What the CLI asks for ([`SandboxSpec`]) and what every runtime executes ([`LaunchPlan`]):
//! the mounts, environment, user and command, decided once, independent of the runtime.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{self, EnvInput, PROXY_PORT};
use crate::error::{Error, Result};
use crate::rootfs::PreparedRootfs;
use crate::runtime::RuntimeChoice;

/// Fixed path of the init/relay helper inside every sandbox.
pub const INIT_PATH: &str = "/.sbx/init";
/// The sandbox user's home (a tmpfs).
pub const HOME: &str = "/home/sbx";
/// Fixed path of the directory holding the proxy's Unix socket inside the sandbox.
pub const PROXY_DIR: &str = "/.sbx/proxy";

/// An additional host directory made visible at the same absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraWorkspace {
    /// Absolute host path.
    pub path: PathBuf,
    /// Mounted read-write when true, read-only otherwise.
    pub writable: bool,
}

/// A host directory mounted inside the sandbox user's home (e.g. an agent's configuration
/// directory kept per sandbox), so what the agent writes there survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeMount {
    /// Absolute host directory.
    pub source: PathBuf,
    /// Path relative to the home directory (`.claude`, `.config/opencode`); no `..`.
    pub path: PathBuf,
}

/// Everything the CLI decides about one sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Unique sandbox name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The OCI image layout directory produced by `sbx build`.
    pub image_layout: PathBuf,
    /// The project directory, mounted read-write at the same absolute path.
    pub workspace: PathBuf,
    /// Further directories, read-only unless marked writable.
    pub extra_workspaces: Vec<ExtraWorkspace>,
    /// Explicit variables (declared secrets, agent settings); nothing else from the host.
    pub env: BTreeMap<String, String>,
    /// The command; empty means the image's default command, else `/bin/sh`.
    pub command: Vec<String>,
    /// Attach a terminal (PTY) instead of plain pipes.
    pub tty: bool,
    /// `TERM` to give the sandbox (the CLI passes the host's when `tty`).
    pub term: Option<String>,
    /// The egress proxy's Unix socket on the host; `None` means no network at all. Its directory
    /// is bind-mounted read-only at [`PROXY_DIR`], so the socket should sit alone in a directory
    /// of its own (not next to audit logs or state).
    pub proxy_socket: Option<PathBuf>,
    /// PEM of the proxy's injection CA, mounted at [`crate::env::CA_PATH`].
    pub ca_pem: Option<PathBuf>,
    /// Which runtime to use.
    pub runtime: RuntimeChoice,
    /// Hostname inside the sandbox; defaults to `sbx-<name>`.
    pub hostname: Option<String>,
    /// Run in the background (outliving the calling process) instead of attached.
    pub detach: bool,
    /// Directories mounted read-write under the home directory.
    #[serde(default)]
    pub home_mounts: Vec<HomeMount>,
}

impl SandboxSpec {
    /// A spec with defaults: no extras, no proxy, automatic runtime, no terminal.
    pub fn new(name: impl Into<String>, image_layout: impl Into<PathBuf>, workspace: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            name: name.into(),
            image_layout: image_layout.into(),
            workspace: workspace.into(),
            extra_workspaces: Vec::new(),
            env: BTreeMap::new(),
            command: Vec::new(),
            tty: false,
            term: None,
            proxy_socket: None,
            ca_pem: None,
            runtime: RuntimeChoice::Auto,
            hostname: None,
            detach: false,
            home_mounts: Vec::new(),
        }
    }
}

/// Checks a sandbox name so it is safe as a directory and container id.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(Error::Spec(format!("sandbox name `{name}` must be 1-64 of [A-Za-z0-9._-]"))) }
}

/// One host path made visible in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub dest: PathBuf,
    /// Read-write when true.
    pub writable: bool,
}

/// The runtime-independent description of one sandbox process tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// Sandbox name.
    pub name: String,
    /// The shared read-only root filesystem.
    pub rootfs: PathBuf,
    /// Bind mounts (helper, proxy socket dir, CA, workspaces), in mount order.
    pub mounts: Vec<BindMount>,
    /// The complete environment.
    pub env: BTreeMap<String, String>,
    /// Full argv: the init helper, its options, `--`, then the user's command.
    pub argv: Vec<String>,
    /// Working directory (the workspace).
    pub cwd: PathBuf,
    /// User id inside the sandbox.
    pub uid: u32,
    /// Group id inside the sandbox.
    pub gid: u32,
    /// Home directory (a tmpfs).
    pub home: String,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// Whether a terminal is attached.
    pub tty: bool,
    /// Whether the sandbox outlives the process that starts it.
    pub detach: bool,
    /// Per-sandbox directory for runtime files.
    pub state_dir: PathBuf,
}

fn absolute_dir(path: &Path, what: &str) -> Result<PathBuf> {
    let canon =
        path.canonicalize().map_err(|e| Error::Spec(format!("{what} {} is not usable: {e}", path.display())))?;
    if !canon.is_dir() {
        return Err(Error::Spec(format!("{what} {} is not a directory", canon.display())));
    }
    Ok(canon)
}

impl LaunchPlan {
    /// Decides mounts, environment, user and argv for `spec` on `rootfs`.
    pub fn build(spec: &SandboxSpec, rootfs: &PreparedRootfs, helper: &Path, state_dir: &Path) -> Result<Self> {
        validate_name(&spec.name)?;
        let workspace = absolute_dir(&spec.workspace, "workspace")?;
        let meta = std::fs::metadata(&workspace).map_err(Error::io("reading workspace owner", &workspace))?;
        // The sandbox user owns the project as on the host (an unprivileged uid for normal users).
        let (uid, gid) = (meta.uid(), meta.gid());
        let home = HOME.to_string();
        let mut mounts =
            vec![BindMount { source: helper.to_path_buf(), dest: PathBuf::from(INIT_PATH), writable: false }];
        let mut init = vec![INIT_PATH.to_string()];
        if let Some(sock) = &spec.proxy_socket {
            let sock_dir = sock.parent().ok_or_else(|| Error::Spec("proxy socket has no parent dir".into()))?;
            let file = sock.file_name().ok_or_else(|| Error::Spec("proxy socket has no file name".into()))?;
            mounts.push(BindMount { source: sock_dir.to_path_buf(), dest: PathBuf::from(PROXY_DIR), writable: false });
            init.push("--relay".into());
            init.push(Path::new(PROXY_DIR).join(file).to_string_lossy().into_owned());
            init.push("--port".into());
            init.push(PROXY_PORT.to_string());
        }
        if let Some(ca) = &spec.ca_pem {
            let ca = ca.canonicalize().map_err(|e| Error::Spec(format!("CA file {}: {e}", ca.display())))?;
            mounts.push(BindMount { source: ca, dest: PathBuf::from(env::CA_PATH), writable: false });
        }
        mounts.push(BindMount { source: workspace.clone(), dest: workspace.clone(), writable: true });
        for extra in &spec.extra_workspaces {
            // A directory, or a single file mounted over a part of a writable one (read-only
            // `.git/config` inside a writable `.git`, say).
            let p = extra
                .path
                .canonicalize()
                .map_err(|e| Error::Spec(format!("extra workspace {}: {e}", extra.path.display())))?;
            mounts.push(BindMount { source: p.clone(), dest: p, writable: extra.writable });
        }
        for hm in &spec.home_mounts {
            let safe = !hm.path.as_os_str().is_empty()
                && hm.path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Err(Error::Spec(format!("home mount {} must be a relative path", hm.path.display())));
            }
            let source = absolute_dir(&hm.source, "home mount")?;
            mounts.push(BindMount { source, dest: Path::new(&home).join(&hm.path), writable: true });
        }
        if spec.tty {
            init.push("--tty".into());
        }
        init.push("--".into());
        let command = if !spec.command.is_empty() {
            spec.command.clone()
        } else if !rootfs.settings.default_command.is_empty() {
            rootfs.settings.default_command.clone()
        } else {
            vec!["/bin/sh".to_string()]
        };
        init.extend(command);
        let env = env::build(&EnvInput {
            image_env: &rootfs.settings.env,
            home: &home,
            term: spec.term.as_deref().or(if spec.tty { Some("xterm-256color") } else { None }),
            lang: None,
            proxy: spec.proxy_socket.is_some(),
            ca: spec.ca_pem.is_some(),
            explicit: &spec.env,
        });
        Ok(LaunchPlan {
            name: spec.name.clone(),
            rootfs: rootfs.rootfs.clone(),
            mounts,
            env,
            argv: init,
            cwd: workspace,
            uid,
            gid,
            home,
            hostname: spec.hostname.clone().unwrap_or_else(|| format!("sbx-{}", spec.name)),
            tty: spec.tty,
            detach: spec.detach,
            state_dir: state_dir.to_path_buf(),
        })
    }
}
