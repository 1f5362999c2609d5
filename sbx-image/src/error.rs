//! The errors `sbx-image` reports, each with what to do about it.

use std::path::{Path, PathBuf};

/// Result alias for this crate.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Everything that can go wrong while fetching, extracting, layering or writing an image.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImageError {
    /// The request itself failed (DNS, connect, TLS, reset).
    #[error("could not download {url}")]
    #[diagnostic(
        code(sbx::image::download),
        help("check the network or the mirror settings for this tool, then rerun")
    )]
    Download {
        /// The artifact URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a non-success status.
    #[error("{url} answered HTTP {status}")]
    #[diagnostic(
        code(sbx::image::http_status),
        help("the artifact may have moved; run `sbx lock` again and review the diff")
    )]
    HttpStatus {
        /// The artifact URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The downloaded bytes do not hash to the locked checksum.
    #[error("checksum mismatch for {url}: sbx.lock pins {expected}, the download is {actual}")]
    #[diagnostic(
        code(sbx::image::checksum),
        help(
            "the file differs from what sbx.lock pins; if upstream re-published it, run `sbx lock --upgrade` and review the diff"
        )
    )]
    ChecksumMismatch {
        /// The artifact URL.
        url: String,
        /// The checksum from the lockfile.
        expected: String,
        /// The checksum of what was received.
        actual: String,
    },
    /// The downloaded size differs from the locked size (a truncated or padded download).
    #[error("size mismatch for {url}: sbx.lock pins {expected} bytes, received {actual}")]
    #[diagnostic(
        code(sbx::image::size),
        help("the download was cut short or the file changed upstream; rerun, then re-lock if it persists")
    )]
    SizeMismatch {
        /// The artifact URL.
        url: String,
        /// The size from the lockfile.
        expected: u64,
        /// The number of bytes received.
        actual: u64,
    },
    /// A filesystem operation failed.
    #[error("I/O error on {}", path.display())]
    #[diagnostic(code(sbx::image::io), help("check permissions and free space on that path"))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An archive entry would land outside the extraction directory.
    #[error("archive {}: entry `{entry}` {reason}", archive.display())]
    #[diagnostic(
        code(sbx::image::unsafe_entry),
        help("the archive is malformed or malicious; sbx refuses entries that escape the install directory")
    )]
    UnsafeEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry name as stored in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// An archive could not be read.
    #[error("cannot read archive {}: {message}", archive.display())]
    #[diagnostic(
        code(sbx::image::archive),
        help("the cached file may be damaged; delete it from the sbx cache and rerun")
    )]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The lockfile asks for something this builder cannot produce.
    #[error("{what} is not supported by sbx build yet")]
    #[diagnostic(code(sbx::image::unsupported), help("{help}"))]
    Unsupported {
        /// What is unsupported.
        what: String,
        /// What the user can do instead.
        help: String,
    },
    /// A tool has no artifact for a platform the image targets.
    #[error("`{tool}@{version}` is not locked for {platform}")]
    #[diagnostic(code(sbx::image::platform), help("run `sbx lock` so every tool is locked for every image platform"))]
    MissingPlatform {
        /// The tool name.
        tool: String,
        /// The locked version.
        version: String,
        /// The platform without an artifact.
        platform: String,
    },
    /// The base image could not be read or does not match the lock.
    #[error("base image {reference}: {message}")]
    #[diagnostic(code(sbx::image::base), help("{help}"))]
    Base {
        /// The configured reference.
        reference: String,
        /// What went wrong.
        message: String,
        /// What to do.
        help: String,
    },
    /// A registry operation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(Box<RegistryError>),
    /// A JSON document (OCI index, manifest, config) could not be read.
    #[error("invalid JSON in {}: {source}", path.display())]
    #[diagnostic(code(sbx::image::json), help("the file is not a valid OCI document"))]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// A registry refused or failed a push.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("registry {url}: {message}")]
#[diagnostic(code(sbx::image::registry), help("{help}"))]
pub struct RegistryError {
    /// The URL of the failing request.
    pub url: String,
    /// What happened.
    pub message: String,
    /// What to do.
    pub help: String,
}

impl From<RegistryError> for ImageError {
    fn from(e: RegistryError) -> Self {
        ImageError::Registry(Box::new(e))
    }
}

/// Attaches a path to `std::io::Error`s.
pub trait IoContext<T> {
    /// Turns the error into [`ImageError::Io`] naming `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| ImageError::Io { path: path.to_path_buf(), source })
    }
}
