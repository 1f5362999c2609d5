//! Where a configuration value came from: a file and a byte span inside it.
//!
//! Every value read from a config file keeps its [`Origin`], so any later error (a version
//! that does not exist, a backend that cannot be locked) can point at the exact place.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// The text of one configuration file, shared by every value read from it.
#[derive(Debug)]
pub struct SourceFile {
    /// Path of the file as found on disk.
    pub path: PathBuf,
    /// Full text of the file.
    pub text: Arc<str>,
}

impl SourceFile {
    /// Wraps an already-read file.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Arc<Self> {
        Arc::new(Self { path: path.into(), text: text.into() })
    }

    /// A miette source for rendering snippets of this file.
    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.path.display().to_string(), self.text.clone()).with_language("toml")
    }

    /// 1-based line number of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }
}

/// A file plus the byte span of one value inside it.
#[derive(Clone)]
pub struct Origin {
    /// The file the value was read from.
    pub file: Arc<SourceFile>,
    /// Byte range of the value (or its key) inside the file.
    pub span: Range<usize>,
}

impl Origin {
    /// A new origin.
    pub fn new(file: &Arc<SourceFile>, span: Range<usize>) -> Self {
        Self { file: file.clone(), span }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// 1-based line of the start of the span.
    pub fn line(&self) -> usize {
        self.file.line_of(self.span.start)
    }

    /// The span as miette wants it.
    pub fn source_span(&self) -> SourceSpan {
        SourceSpan::from(self.span.clone())
    }

    /// The miette source of the file.
    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        self.file.named_source()
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for Origin {
    /// `path:line`, the form editors and terminals turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.path.display(), self.line())
    }
}

/// A value together with the place it was written.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    /// The value itself.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

impl<T> Spanned<T> {
    /// Pairs a value with its origin.
    pub fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
