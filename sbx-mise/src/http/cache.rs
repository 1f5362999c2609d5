//! The on-disk HTTP cache: one file per URL, written whole or not at all.
//!
//! An entry is a single file `<root>/<sha256(key)>` holding a header line, one line of JSON
//! metadata (URL, validators, body length and sha256) and the body. It is written to a temp
//! file in the same directory and renamed, so a killed run leaves either the old entry or the
//! new one; a reader also checks the recorded length and sha256 and treats any mismatch as a
//! miss, so a damaged file is never served.
//!
//! Entries are written by a [`Writer`], on a thread of its own, while the run goes on. Creating
//! a file is the slowest step of a cold lock on some filesystems (0.4 ms per file and per
//! directory on the ext4 of these machines, where a cold lock writes a hundred entries), so
//! entries sit in one flat directory (no directory per hash prefix to create) and no response
//! waits for its entry to be written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, mpsc};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First line of every entry; bump it when the layout changes (old entries become misses).
const MAGIC: &[u8] = b"sbx-http-cache 1\n";

/// What is stored next to a body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The URL (or key) the entry belongs to; checked on read against hash collisions.
    pub key: String,
    /// `ETag` of the response, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified` of the response, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// Body length in bytes.
    pub len: u64,
    /// Body sha256, lowercase hex.
    pub sha256: String,
}

/// A cached response.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Validators and integrity data.
    pub meta: EntryMeta,
    /// The body.
    pub body: Bytes,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file an entry for `key` lives in.
    pub fn path_for(&self, key: &str) -> PathBuf {
        self.root.join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// The entry for `key`, if present and intact. A damaged entry reads as absent.
    pub fn read(&self, key: &str) -> Option<Entry> {
        let raw = std::fs::read(self.path_for(key)).ok()?;
        let rest = raw.strip_prefix(MAGIC)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let meta: EntryMeta = serde_json::from_slice(&rest[..newline]).ok()?;
        let body = &rest[newline + 1..];
        if meta.key != key || meta.len != body.len() as u64 || hex::encode(Sha256::digest(body)) != meta.sha256 {
            return None;
        }
        Some(Entry { meta, body: Bytes::copy_from_slice(body) })
    }

    /// Stores `body` for `key` atomically (temp file + rename in the cache directory). Blocking;
    /// the client hands entries to a [`Writer`].
    pub fn write(
        &self,
        key: &str,
        etag: Option<String>,
        last_modified: Option<String>,
        body: &[u8],
    ) -> std::io::Result<()> {
        let path = self.path_for(key);
        let dir = &self.root;
        std::fs::create_dir_all(dir)?;
        let meta = EntryMeta {
            key: key.to_string(),
            etag,
            last_modified,
            len: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body)),
        };
        let line = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&line)?;
        tmp.write_all(b"\n")?;
        tmp.write_all(body)?;
        // No fsync: an entry torn by a crash fails the reader's length and sha256 check and is
        // a miss, so durability would only cost time on every response.
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes cache entries on a thread of its own, in the order they are handed over; started
/// on the first entry. Dropping it waits for the entries handed over so far.
pub struct Writer {
    cache: Cache,
    jobs: OnceLock<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

enum Job {
    Write {
        key: String,
        etag: Option<String>,
        last_modified: Option<String>,
        body: Bytes,
    },
    /// Answered once every entry handed over before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Writer {
    /// A writer into `cache`.
    pub fn new(cache: Cache) -> Self {
        Self { cache, jobs: OnceLock::new(), thread: Mutex::new(None) }
    }

    /// Hands an entry over. A cache that cannot be written is only a slower next run, so
    /// failures are ignored; without a thread the entry is written here.
    pub fn write(&self, key: String, etag: Option<String>, last_modified: Option<String>, body: Bytes) {
        let job = Job::Write { key, etag, last_modified, body };
        if let Err(mpsc::SendError(Job::Write { key, etag, last_modified, body })) = self.send(job) {
            let _ = self.cache.write(&key, etag, last_modified, &body);
        }
    }

    /// Waits until every entry handed over so far is written.
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.jobs.get().is_some() && self.send(Job::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    fn send(&self, job: Job) -> Result<(), mpsc::SendError<Job>> {
        match self.jobs.get_or_init(|| self.start()) {
            Some(jobs) => jobs.send(job),
            None => Err(mpsc::SendError(job)),
        }
    }

    fn start(&self) -> Option<mpsc::Sender<Job>> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let cache = self.cache.clone();
        let thread = std::thread::Builder::new().name("sbx-http-cache".into()).spawn(move || {
            for job in queue {
                match job {
                    Job::Write { key, etag, last_modified, body } => {
                        let _ = cache.write(&key, etag, last_modified, &body);
                    }
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        let thread = thread.ok()?;
        *self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
        Some(jobs)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what was handed over.
        drop(self.jobs.take());
        let thread = self.thread.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.read("http://x/a").is_none());
        cache.write("http://x/a", Some("\"e1\"".into()), None, b"hello").unwrap();
        let e = cache.read("http://x/a").unwrap();
        assert_eq!(&e.body[..], b"hello");
        assert_eq!(e.meta.etag.as_deref(), Some("\"e1\""));

        // A truncated entry (as a torn write without rename would leave) is never served.
        let path = cache.path_for("http://x/a");
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() - 2]).unwrap();
        assert!(cache.read("http://x/a").is_none());
        // Same length, different bytes: the checksum catches it.
        let mut flipped = raw.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(cache.read("http://x/a").is_none());
    }

    #[test]
    fn leftover_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.write("k", None, None, b"old").unwrap();
        // A run killed mid-write leaves only a temp file next to the entry.
        let path = cache.path_for("k");
        std::fs::write(path.parent().unwrap().join(".tmp-killed"), b"partial").unwrap();
        assert_eq!(&cache.read("k").unwrap().body[..], b"old");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_writes_in_order_and_flush_and_drop_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("http"));
        let writer = Writer::new(cache.clone());
        // Nothing handed over: nothing to wait for, no thread.
        writer.flush().await;
        assert!(!cache.root().exists());
        for i in 0..50 {
            writer.write(format!("k{i}"), None, None, Bytes::from(format!("body {i}")));
        }
        writer.write("k0".into(), Some("\"e2\"".into()), None, Bytes::from_static(b"newer"));
        writer.flush().await;
        let entry = cache.read("k0").unwrap();
        assert_eq!((&entry.body[..], entry.meta.etag.as_deref()), (&b"newer"[..], Some("\"e2\"")));
        assert_eq!(&cache.read("k49").unwrap().body[..], b"body 49");
        // One flat directory: no directory per entry to create.
        assert_eq!(cache.path_for("k1").parent(), Some(cache.root()));
        assert_eq!(std::fs::read_dir(cache.root()).unwrap().count(), 50);

        writer.write("late".into(), None, None, Bytes::from_static(b"still written"));
        drop(writer);
        assert_eq!(&cache.read("late").unwrap().body[..], b"still written");
    }
}
