//! One member of a remote zip file (a wheel's `*.dist-info/METADATA`) read with HTTP range
//! requests instead of downloading the whole file, as pip's and uv's "lazy wheel" do.
//!
//! 1. A suffix range fetches the last [`TAIL`] bytes: the end-of-central-directory record and,
//!    for most wheels, the whole central directory and the `.dist-info` files (written last by
//!    setuptools, hatchling, flit). At the same time the first [`HEAD`] bytes are asked for:
//!    maturin writes METADATA first. Either way the member usually arrives in one round trip.
//! 2. The `zip` crate reads the archive over a [`Sparse`] file that holds only the ranges
//!    fetched so far; a read outside them fails and records the gap, which is fetched before the
//!    crate runs again.
//! 3. The member's local header and data are fetched in one range, computed from its central
//!    directory entry, unless the tail already holds them.
//!
//! A server that answers a range request with the whole file (`200`) is read in memory, so a
//! mirror without range support costs one full download, as before.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use futures::future::{Either, select};

use crate::resolve::FetchError;

/// Bytes fetched from the end of the file first. Measured on the 66 wheels of an 8-tool lock
/// (black, ruff, mypy, poetry, httpie closures): METADATA starts within the last 64 KiB or the
/// first 64 KiB in 62 of them, within the last 128 KiB in all (auditwheel-repaired wheels
/// such as black's and mypy's place the `.dist-info` before other top-level packages).
pub const TAIL: u64 = 128 * 1024;

/// Bytes fetched from the start of the file along with the tail; waited for only when the
/// tail points into them.
pub const HEAD: u64 = 64 * 1024;

/// Range requests after the tail before giving up on a file.
const MAX_ROUNDS: usize = 6;

/// Largest gap fetched in one request when a read lands outside the fetched ranges.
const MAX_GAP: u64 = 8 << 20;

/// Room for a local header's extra field, which the central directory does not describe.
const LOCAL_EXTRA: u64 = 1024;

/// Largest member read (a METADATA file is a few kilobytes to a few hundred).
const MAX_MEMBER: u64 = 64 << 20;

/// Size of a local file header before its name and extra field.
const LOCAL_HEADER: u64 = 30;

/// A byte range to request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The last `n` bytes (`bytes=-n`).
    Suffix(u64),
    /// The first `n` bytes, asked for on a guess along with the tail: when the server ignores
    /// ranges the answer is not read ([`Ranged::Ignored`]), the tail's whole file serves.
    Prefix(u64),
    /// `start..end`, end exclusive (`bytes=start-(end-1)`).
    Span {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
}

impl ByteRange {
    /// The first byte asked for (`0` for a suffix, whose start depends on the file's length).
    pub fn start(&self) -> u64 {
        match *self {
            Self::Suffix(_) | Self::Prefix(_) => 0,
            Self::Span { start, .. } => start,
        }
    }

    /// The `Range` header value.
    pub fn header(&self) -> String {
        match *self {
            Self::Suffix(n) => format!("bytes=-{n}"),
            Self::Prefix(n) => format!("bytes=0-{}", n.saturating_sub(1)),
            Self::Span { start, end } => format!("bytes={start}-{}", end.saturating_sub(1).max(start)),
        }
    }
}

/// What a server sent for a range request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranged {
    /// `206 Partial Content`: `bytes` start at `start` in a file of `total` bytes.
    Part {
        /// Offset of the first byte.
        start: u64,
        /// Length of the whole file.
        total: u64,
        /// The bytes.
        bytes: Bytes,
    },
    /// The server ignored the range and sent the whole file.
    Whole(Bytes),
    /// The server ignored a [`ByteRange::Prefix`] request; its body was not read.
    Ignored,
}

/// Why a member could not be read lazily.
#[derive(Debug)]
pub enum LazyError {
    /// A request failed.
    Fetch(FetchError),
    /// The answers do not make a zip file with the member (or do not fit together); the
    /// message says what is wrong.
    Malformed(String),
}

impl From<FetchError> for LazyError {
    fn from(e: FetchError) -> Self {
        Self::Fetch(e)
    }
}

/// Whether a zip entry is a wheel's metadata file (`<name>-<version>.dist-info/METADATA` at
/// the top level).
pub fn is_wheel_metadata(name: &str) -> bool {
    name.ends_with(".dist-info/METADATA") && name.matches('/').count() == 1
}

/// The first member (in central directory order) whose name `select` accepts, read from a
/// whole zip file in memory. The error says what is wrong, for a user.
pub fn member_in(file: &[u8], select: fn(&str) -> bool, what: &str) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(file)).map_err(|e| format!("not a wheel: {e}"))?;
    let index = find(&zip, select).ok_or_else(|| format!("the wheel has no {what}"))?;
    read_index(&mut zip, index)
}

/// Reads the first member `select` accepts from the remote file `fetch` serves, with range
/// requests (see the module documentation).
pub async fn read_member<F, Fut>(
    mut fetch: F,
    select_member: fn(&str) -> bool,
    what: &str,
) -> Result<Vec<u8>, LazyError>
where
    F: FnMut(ByteRange) -> Fut,
    Fut: Future<Output = Result<Ranged, FetchError>>,
{
    let tail = std::pin::pin!(fetch(ByteRange::Suffix(TAIL)));
    let mut head = std::pin::pin!(fetch(ByteRange::Prefix(HEAD)));
    // The head only saves a round trip: it is waited for only when the tail is not enough.
    let (tail, mut head_answer) = match select(tail, head.as_mut()).await {
        Either::Left((tail, _)) => (tail, None),
        Either::Right((head, tail)) => (tail.await, Some(head)),
    };
    let mut head_pending = head_answer.is_none();
    let mut file = match tail? {
        Ranged::Whole(bytes) => return member_in(&bytes, select_member, what).map_err(LazyError::Malformed),
        Ranged::Part { start, total, bytes } => Sparse::new(total, start, bytes)?,
        Ranged::Ignored => return Err(LazyError::Malformed("the server ignored a range request".into())),
    };
    let mut rounds = 0;
    loop {
        if let Some(Ok(Ranged::Part { start, total, bytes })) = head_answer.take()
            && total == file.len
        {
            file.insert(start, bytes)?;
        }
        let range = match file.attempt(select_member, what) {
            Attempt::Done(data) => return Ok(data),
            Attempt::Failed(message) => return Err(LazyError::Malformed(message)),
            // The head is waited for only when it holds the start of what is missing; a gap
            // past it is asked for at once, so a slow head never costs a round trip.
            Attempt::Need(range) if head_pending && range.start() < HEAD => {
                head_answer = Some(head.as_mut().await);
                head_pending = false;
                continue;
            }
            Attempt::Need(range) => range,
        };
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(LazyError::Malformed(format!("{what} not found after {MAX_ROUNDS} range requests")));
        }
        match fetch(range).await? {
            Ranged::Whole(bytes) => return member_in(&bytes, select_member, what).map_err(LazyError::Malformed),
            Ranged::Ignored => return Err(LazyError::Malformed("the server ignored a range request".into())),
            Ranged::Part { start, total, bytes } => {
                if total != file.len {
                    return Err(LazyError::Malformed(format!(
                        "the file changed size between two range requests ({} → {total} bytes)",
                        file.len
                    )));
                }
                file.insert(start, bytes)?;
            }
        }
    }
}

fn find<R: Read + Seek>(zip: &zip::ZipArchive<R>, select: fn(&str) -> bool) -> Option<usize> {
    (0..zip.len()).find(|&i| zip.name_for_index(i).and_then(Result::ok).is_some_and(|name| select(&name)))
}

fn read_index<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, index: usize) -> Result<Vec<u8>, String> {
    let member = zip.by_index(index).map_err(|e| e.to_string())?;
    let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
    if member.size() > MAX_MEMBER {
        return Err(format!("{name} is {} bytes, more than a metadata file can be", member.size()));
    }
    let mut data = Vec::new();
    member.take(MAX_MEMBER).read_to_end(&mut data).map_err(|e| format!("{name}: {e}"))?;
    Ok(data)
}

/// What one pass of the zip reader over the fetched ranges came to.
enum Attempt {
    Done(Vec<u8>),
    Need(ByteRange),
    Failed(String),
}

/// A file of known length of which only some ranges are present; reads elsewhere fail and
/// record where they started.
struct Sparse {
    len: u64,
    pos: u64,
    /// Start offset → bytes; ranges may overlap.
    chunks: BTreeMap<u64, Bytes>,
    /// The first read that found no bytes, since the last [`Sparse::attempt`].
    miss: Option<u64>,
    /// The member's local header and data, when they are not all fetched yet.
    member: Option<ByteRange>,
}

impl Sparse {
    fn new(len: u64, start: u64, bytes: Bytes) -> Result<Self, LazyError> {
        let mut file = Self { len, pos: 0, chunks: BTreeMap::new(), miss: None, member: None };
        file.insert(start, bytes)?;
        Ok(file)
    }

    fn insert(&mut self, start: u64, bytes: Bytes) -> Result<(), LazyError> {
        let end = start.checked_add(bytes.len() as u64);
        if bytes.is_empty() || end.is_none_or(|end| end > self.len) {
            return Err(LazyError::Malformed(format!(
                "a range answer of {} bytes at {start} does not fit a file of {} bytes",
                bytes.len(),
                self.len
            )));
        }
        self.chunks.insert(start, bytes);
        Ok(())
    }

    /// The fetched bytes from `pos` on, as far as one chunk reaches.
    fn at(&self, pos: u64) -> Option<&[u8]> {
        self.chunks.range(..=pos).rev().find_map(|(&start, bytes)| {
            let offset = usize::try_from(pos - start).ok()?;
            bytes.get(offset..).filter(|rest| !rest.is_empty())
        })
    }

    /// Whether `start..end` is fetched.
    fn covers(&self, mut start: u64, end: u64) -> bool {
        while start < end {
            match self.at(start) {
                Some(rest) => start += rest.len() as u64,
                None => return false,
            }
        }
        true
    }

    /// The range to fetch for a read that missed at `from`: up to the next fetched chunk,
    /// at most [`MAX_GAP`] bytes.
    fn gap(&self, from: u64) -> ByteRange {
        let next = self.chunks.range(from + 1..).next().map_or(self.len, |(&start, _)| start);
        ByteRange::Span { start: from, end: next.min(from.saturating_add(MAX_GAP)).min(self.len).max(from + 1) }
    }

    fn attempt(&mut self, select: fn(&str) -> bool, what: &str) -> Attempt {
        self.pos = 0;
        self.miss = None;
        self.member = None;
        let outcome = self.try_read(select, what);
        match (outcome, self.member, self.miss) {
            (Ok(Some(data)), _, _) => Attempt::Done(data),
            (_, Some(range), _) => Attempt::Need(range),
            (_, None, Some(from)) => Attempt::Need(self.gap(from)),
            (Ok(None), None, None) => Attempt::Failed(format!("the wheel has no {what}")),
            (Err(message), None, None) => Attempt::Failed(message),
        }
    }

    /// `Ok(None)`: no member matches, or bytes are missing (see `miss` and `member`).
    fn try_read(&mut self, select: fn(&str) -> bool, what: &str) -> Result<Option<Vec<u8>>, String> {
        let zip = zip::ZipArchive::new(&mut *self).map_err(|e| format!("not a wheel: {e}"))?;
        let Some(index) = find(&zip, select) else {
            return Ok(None);
        };
        let entry = zip.by_index_data(index).map_err(|e| e.to_string())?;
        let (start, name_len, size) = (entry.header_start(), entry.name_raw().len() as u64, entry.compressed_size());
        if size > MAX_MEMBER {
            return Err(format!("the wheel's {what} is {size} bytes, more than a metadata file can be"));
        }
        let end = start.saturating_add(LOCAL_HEADER + name_len + LOCAL_EXTRA + size).min(zip.central_directory_start());
        let file = zip.into_inner();
        if !file.covers(start, end) {
            file.member = Some(ByteRange::Span { start, end });
            return Ok(None);
        }
        let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a wheel: {e}"))?;
        read_index(&mut zip, index).map(Some)
    }
}

impl Read for Sparse {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let Some(rest) = self.at(self.pos) else {
            self.miss.get_or_insert(self.pos);
            return Err(std::io::Error::other("range not fetched yet"));
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
#[path = "lazy_zip_tests.rs"]
mod tests;
