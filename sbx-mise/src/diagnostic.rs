//! The error type every configuration problem is reported with.
//!
//! A [`ConfigError`] points at a file and a byte span (rendered by miette as a snippet with a
//! label), says what is wrong, and carries a `help` line that says what to do.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::Origin;

/// A problem in a configuration file, at a place in it.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(sbx::config))]
pub struct SpannedError {
    /// What is wrong, in one sentence.
    pub message: String,
    #[source_code]
    src: NamedSource<Arc<str>>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    /// What to do about it.
    #[help]
    pub help: Option<String>,
    /// File and 1-based line, kept for plain-text output and tests.
    pub location: String,
}

/// Any error reading configuration.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    /// A problem at a place in a file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    At(Box<SpannedError>),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(sbx::config::io), help("check that the file exists and is readable"))]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ConfigError {
    /// An error at `origin` with a message, a short label for the span, and an optional hint.
    pub fn at(origin: &Origin, message: impl Into<String>, label: impl Into<String>, help: Option<String>) -> Self {
        Self::At(Box::new(SpannedError {
            message: message.into(),
            src: origin.named_source(),
            span: origin.source_span(),
            label: label.into(),
            help,
            location: origin.to_string(),
        }))
    }

    /// `path:line` of the error, when it has one.
    pub fn location(&self) -> Option<&str> {
        match self {
            Self::At(e) => Some(&e.location),
            Self::Io { .. } => None,
        }
    }

    /// The hint, when there is one.
    pub fn help_text(&self) -> Option<&str> {
        match self {
            Self::At(e) => e.help.as_deref(),
            Self::Io { .. } => None,
        }
    }
}
