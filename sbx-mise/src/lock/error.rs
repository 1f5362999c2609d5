//! Errors of a lock run: each failed tool points at its line in the config.

use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::Origin;
use crate::resolve::{FetchError, ResolveError};

/// One tool that could not be locked.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("cannot lock {tool}: {reason}")]
#[diagnostic(code(sbx::lock))]
pub struct ToolLockError {
    /// The tool.
    pub tool: String,
    /// Why (part of the message, not a separate cause, so it is printed once).
    pub reason: ResolveError,
    #[source_code]
    src: NamedSource<Arc<str>>,
    #[label("requested here")]
    span: SourceSpan,
    /// What to do.
    #[help]
    pub help: Option<String>,
    /// `file:line` of the request.
    pub location: String,
}

impl ToolLockError {
    /// Attaches the config origin and a hint to a resolution error.
    pub fn new(tool: &str, origin: &Origin, reason: ResolveError) -> Self {
        let help = match &reason {
            ResolveError::NoMatch { nearest, .. } if !nearest.is_empty() => {
                Some(format!("versions that exist: {}", nearest.join(", ")))
            }
            ResolveError::NoMatch { .. } => Some("check the version; `latest` picks the newest".into()),
            ResolveError::Fetch(FetchError::Offline { .. }) => {
                Some("run once without --offline to fill the HTTP cache".into())
            }
            ResolveError::Fetch(_) => Some(
                "check the network or the mirror settings ([mirrors] in .sbx.toml, MISE_NODE_MIRROR_URL, …); the lockfile was not changed"
                    .into(),
            ),
            ResolveError::Malformed { .. } => Some("the upstream answered something unexpected; retry later or use a mirror".into()),
            ResolveError::NoArtifact { .. } => {
                Some("remove that platform from [image] platforms, or pick a version that publishes it".into())
            }
            ResolveError::PythonTooOld { help, .. } => Some(help.clone()),
            ResolveError::MissingChecksum { .. } => {
                Some("the upstream's checksum list is incomplete; sbx never pins an artifact without a checksum".into())
            }
            ResolveError::Unsupported(_) => None,
        };
        Self {
            tool: tool.to_string(),
            reason,
            src: origin.named_source(),
            span: origin.source_span(),
            help,
            location: origin.to_string(),
        }
    }
}

/// A lock run failed; the lockfile is left as it was.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{count} tool(s) could not be locked; sbx.lock was not changed")]
#[diagnostic(code(sbx::lock::failed))]
pub struct LockError {
    /// How many tools failed.
    pub count: usize,
    /// Each failure.
    #[related]
    pub tools: Vec<ToolLockError>,
}

impl LockError {
    /// Bundles the failures of one run.
    pub fn from_tools(tools: Vec<ToolLockError>) -> Self {
        Self { count: tools.len(), tools }
    }
}
