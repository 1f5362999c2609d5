//! The sandbox's egress proxy: started before the sandbox, stopped after it, by the process
//! that owns the sandbox (`sbx start` when attached, the supervisor when detached).
//!
//! Files, per sandbox (under the sandbox's state dir, `<state>/sandboxes/<name>/`): the audit
//! log (sbx-proxy's name for it), `ca.pem` (the injection CA's certificate, public), `ca-key.pem`
//! (its private key, mode 0600, never mounted: the CA is made once per sandbox and reused, which
//! also spares each start the key generation and the crypto library's entropy setup), and the
//! Unix socket alone in a directory of its own (`sock/proxy.sock`, or a short private
//! directory under `/tmp` when the state dir's path is too long for a socket address), since
//! that directory is what the sandbox sees.

use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, WrapErr, miette};
use sbx_proxy::{CertificateAuthority, Proxy, ProxyHandle};

use super::secrets::ResolvedSecret;
use crate::policy;
use crate::project::Project;

/// Longest Unix socket path we use (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Where one sandbox's proxy keeps its files.
#[derive(Debug, Clone)]
pub struct ProxyPaths {
    /// The proxy's state dir (audit log).
    pub state_dir: PathBuf,
    /// The Unix socket (alone in its directory).
    pub socket: PathBuf,
    /// The CA certificate file.
    pub ca: PathBuf,
}

/// The paths for the sandbox whose state dir is `state_dir`.
pub fn paths(name: &str, state_dir: &Path) -> ProxyPaths {
    let mut socket = state_dir.join("sock").join("proxy.sock");
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(state_dir.to_string_lossy().as_bytes()));
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        socket = std::env::temp_dir().join(format!("sbx-{uid}-{}-{}", &hash[..12], name.len())).join("proxy.sock");
    }
    ProxyPaths { state_dir: state_dir.to_path_buf(), socket, ca: state_dir.join("ca.pem") }
}

/// A proxy running on its own tokio runtime for as long as this value lives.
pub struct RunningProxy {
    runtime: tokio::runtime::Runtime,
    handle: ProxyHandle,
    /// Its files.
    pub paths: ProxyPaths,
    /// Whether a credential is injected (the sandbox must trust the CA).
    pub injects: bool,
}

impl RunningProxy {
    /// Starts the proxy for sandbox `name` of `project`.
    pub fn start(project: &Project, name: &str, state_dir: &Path, secrets: &[ResolvedSecret]) -> miette::Result<Self> {
        let paths = paths(name, state_dir);
        let sock_dir = paths.socket.parent().unwrap_or(state_dir);
        create_private_dir(sock_dir)?;
        let injections = secrets.iter().filter_map(ResolvedSecret::injection_rule).collect();
        let mut opts = policy::proxy_options(project, name, &paths.state_dir, paths.socket.clone(), injections)?;
        opts.ca = Some(sandbox_ca(name, &paths)?);
        let injects = !opts.injections.is_empty();
        let runtime = runtime()?;
        let handle = runtime.block_on(Proxy::start(opts)).map_err(|e| {
            miette!(help = "check the network settings in .sbx.toml (`sbx policy show`)", "cannot start the proxy: {e}")
        })?;
        write_file(&paths.ca, handle.ca_cert_pem().as_bytes())?;
        Ok(RunningProxy { runtime, handle, paths, injects })
    }

    /// Stops listening and closes every connection.
    pub fn stop(self) {
        let RunningProxy { runtime, handle, paths, .. } = self;
        runtime.block_on(handle.shutdown());
        if let Some(dir) = paths.socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The tokio runtime a proxy runs on (two worker threads called `sbx-proxy`), for `sbx start`
/// and `sbx proxy` alike.
pub fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sbx-proxy")
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the proxy's runtime")
}

/// The sandbox's CA: loaded from its state dir, or made and saved there on first use.
fn sandbox_ca(name: &str, paths: &ProxyPaths) -> miette::Result<CertificateAuthority> {
    let key_path = paths.state_dir.join("ca-key.pem");
    if let (Ok(cert), Ok(key)) = (std::fs::read_to_string(&paths.ca), std::fs::read_to_string(&key_path))
        && let Ok(ca) = CertificateAuthority::from_pem(name, &cert, &key)
    {
        return Ok(ca);
    }
    let ca = CertificateAuthority::generate(name).map_err(|e| miette!("cannot make the sandbox's CA: {e}"))?;
    std::fs::create_dir_all(&paths.state_dir).into_diagnostic()?;
    let mut tmp = tempfile_in(&paths.state_dir)?;
    std::io::Write::write_all(&mut tmp.0, ca.key_pem().as_bytes()).into_diagnostic()?;
    std::fs::rename(&tmp.1, &key_path).map_err(|e| miette!("cannot write {}: {e}", key_path.display()))?;
    write_file(&paths.ca, ca.cert_pem().as_bytes())?;
    Ok(ca)
}

/// A new file readable only by the owner, and its path.
fn tempfile_in(dir: &Path) -> miette::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!(".ca-key-{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| miette!("cannot write {}: {e}", path.display()))?;
    Ok((file, path))
}

fn create_private_dir(dir: &Path) -> miette::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| miette!("cannot create the proxy socket directory {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).into_diagnostic()?;
    // SAFETY: getuid has no preconditions.
    if !meta.is_dir() || meta.uid() != unsafe { libc::getuid() } {
        return Err(miette!(
            help = "remove it; sbx creates it itself",
            "{} is not a directory of yours; refusing to put the proxy socket there",
            dir.display()
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).into_diagnostic()?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).into_diagnostic()?;
    }
    std::fs::write(path, bytes).map_err(|e| miette!("cannot write {}: {e}", path.display()))
}
