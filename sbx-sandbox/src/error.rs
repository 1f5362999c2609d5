//! The crate's error type: every variant says what failed and what to do about it.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong preparing or running a sandbox.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// A filesystem or process operation failed.
    #[error("{what}: {path}")]
    #[diagnostic(code(sbx::sandbox::io), help("check that the path exists and is accessible to your user"))]
    Io {
        /// What sbx was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The OCI image layout is missing or malformed.
    #[error("invalid OCI image layout at {path}: {reason}")]
    #[diagnostic(code(sbx::sandbox::image), help("rebuild the image with `sbx build`"))]
    Image {
        /// The layout directory or blob.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A layer tries to write outside the root filesystem.
    #[error("layer {layer} contains an entry that escapes the root filesystem: {entry}")]
    #[diagnostic(
        code(sbx::sandbox::path_escape),
        help("the image is corrupt or malicious; rebuild it with `sbx build` from a trusted base")
    )]
    PathEscape {
        /// Digest of the offending layer.
        layer: String,
        /// The entry path as written in the tar.
        entry: String,
    },

    /// The requested runtime cannot run on this machine.
    #[error("runtime `{runtime}` is not usable here: {reason}")]
    #[diagnostic(code(sbx::sandbox::runtime_unavailable), help("{help}"))]
    RuntimeUnavailable {
        /// Runtime name.
        runtime: String,
        /// Why it does not work.
        reason: String,
        /// What to do about it.
        help: String,
    },

    /// No runtime works on this machine.
    #[error("no sandbox runtime works on this machine")]
    #[diagnostic(code(sbx::sandbox::no_runtime), help("run `sbx doctor` to see why; install bubblewrap or runsc"))]
    NoRuntime,

    /// An unknown runtime name was configured.
    #[error("unknown runtime `{0}`")]
    #[diagnostic(
        code(sbx::sandbox::unknown_runtime),
        help("use one of: auto, gvisor, bwrap, docker, podman (docker-sbx is run by `sbx start`)")
    )]
    UnknownRuntime(String),

    /// The sandbox spec is inconsistent.
    #[error("invalid sandbox settings: {0}")]
    #[diagnostic(code(sbx::sandbox::spec))]
    Spec(String),

    /// Building the seccomp filter failed.
    #[error("cannot build the seccomp filter: {0}")]
    #[diagnostic(code(sbx::sandbox::seccomp), help("this is a bug in sbx; please report it"))]
    Seccomp(String),

    /// No sandbox with that name exists.
    #[error("no sandbox named `{0}`")]
    #[diagnostic(code(sbx::sandbox::not_found), help("`sbx ls` lists the sandboxes"))]
    NotFound(String),

    /// A sandbox with that name is already running.
    #[error("sandbox `{0}` is already running")]
    #[diagnostic(code(sbx::sandbox::running), help("stop it with `sbx stop {0}` or pick another name"))]
    AlreadyRunning(String),

    /// Metadata JSON could not be read or written.
    #[error("sandbox metadata {path} is unreadable: {source}")]
    #[diagnostic(code(sbx::sandbox::metadata), help("remove the sandbox with `sbx rm` and start it again"))]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    /// Shorthand for [`Error::Image`].
    pub fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Image { path: path.into(), reason: reason.into() }
    }
}
