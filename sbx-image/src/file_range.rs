//! A byte range of an open file: how a layer refers to a file's bytes inside an archive or a
//! scratch file without copying them out (see `extract`).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// `len` bytes at `offset` of an open file, read with positioned reads (any number of
/// ranges of one file can be read at once). Two ranges are equal when they are the same
/// bytes of the same open file.
#[derive(Clone, Debug)]
pub struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// The range `offset..offset + len` of `file`.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        Self { file, offset, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A reader of exactly these bytes; reading past the end of the file is an error.
    pub fn reader(&self) -> impl Read + '_ {
        RangeReader { file: &self.file, at: self.offset, end: self.offset + self.len }
    }
}

impl PartialEq for FileRange {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset && self.len == other.len
    }
}

impl Eq for FileRange {}

impl std::hash::Hash for FileRange {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.file) as usize, self.offset, self.len).hash(state);
    }
}

struct RangeReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.at).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ends before the range does"));
        }
        self.at += n as u64;
        Ok(n)
    }
}
