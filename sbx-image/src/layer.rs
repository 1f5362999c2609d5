//! Deterministic layer writer: a [`LayerTree`] in, a compressed tar blob with its digests out.
//!
//! Entries are written sorted by the bytes of their full path, every header built here:
//! GNU format, mtime = [`LayerOptions::mtime`], uid/gid from [`LayerOptions::owner_of`],
//! no user or group names, mode 0755 for directories (unless set with
//! [`LayerTree::add_dir_with_mode`], e.g. 1777 for `/tmp`) and executable files, 0644 for other
//! files, 0777 for symlinks (never followed). Parent directories of every entry are written
//! with the same header in every layer. Files that share an inode are written once and then
//! as hard links to the first path. The uncompressed tar is hashed (diff_id) on one thread
//! while another compresses it and hashes the result (digest), in the same pass.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest, Sha256};

use crate::digest::HashingWriter;
use crate::error::{ImageError, IoContext, Result};
pub use crate::file_range::FileRange;
use crate::treehash::{TreeHasher, TreeRecord};

/// Layer compression, with pinned levels so the same input gives the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip through flate2's zlib-rs backend (the compatible default).
    Gzip {
        /// 0–9; [`Compression::DEFAULT_GZIP_LEVEL`] by default.
        level: u32,
    },
    /// zstd (opt-in; needs a recent runtime to pull).
    Zstd {
        /// 1–19; [`Compression::DEFAULT_ZSTD_LEVEL`] by default.
        level: i32,
    },
}

impl Compression {
    /// The gzip level used unless configured.
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    /// The zstd level used unless configured.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Self::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// A stable string naming algorithm and level, used in cache keys.
    pub fn cache_key(&self) -> String {
        match self {
            Self::Gzip { level } => format!("gzip-{level}-zlib-rs"),
            // `mt`: zstd's multi-threaded framing, the same bytes for any worker count.
            Self::Zstd { level } => format!("zstd-{level}-mt1"),
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::Gzip { level: Self::DEFAULT_GZIP_LEVEL }
    }
}

/// How headers are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Compression and level.
    pub compression: Compression,
    /// mtime of every entry (SOURCE_DATE_EPOCH, default 0).
    pub mtime: u64,
    /// uid and gid of every entry outside `user_home`.
    pub owner: (u64, u64),
    /// Entries at or below this image path (relative, e.g. `home/sbx`) belong to the user
    /// `(path, uid, gid)` instead.
    pub user_home: Option<(String, u64, u64)>,
}

impl LayerOptions {
    /// The uid and gid an entry at `path` gets.
    pub fn owner_of(&self, path: &[u8]) -> (u64, u64) {
        if let Some((home, uid, gid)) = &self.user_home {
            let home = home.as_bytes();
            if path == home || (path.starts_with(home) && path.get(home.len()) == Some(&b'/')) {
                return (*uid, *gid);
            }
        }
        self.owner
    }
}

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A file on disk, read when the layer is written.
    Disk(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// A byte range of an open file (an entry of an uncompressed tar, a scratch file).
    Range(FileRange),
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Its content.
        source: FileSource,
        /// Whether it is executable (mode 0755 instead of 0644).
        exec: bool,
    },
    /// A symlink with this target.
    Symlink(Vec<u8>),
    /// A hard link to the entry at this path (which sorts before it).
    Hardlink(Vec<u8>),
}

/// The content of one layer: image paths (relative to `/`, `/`-separated) → entries.
#[derive(Clone, Debug, Default)]
pub struct LayerTree {
    entries: BTreeMap<Vec<u8>, Node>,
    /// Directories whose mode is not 0755 (`tmp` → 0o1777).
    dir_modes: BTreeMap<Vec<u8>, u32>,
}

fn clean(path: &str) -> Vec<u8> {
    path.trim_matches('/').as_bytes().to_vec()
}

impl LayerTree {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries in write order.
    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Node> {
        &self.entries
    }

    /// Adds an entry and all its missing parent directories.
    pub fn insert(&mut self, path: &[u8], node: Node) {
        for (i, b) in path.iter().enumerate() {
            if *b == b'/' && i > 0 {
                self.entries.entry(path[..i].to_vec()).or_insert(Node::Dir);
            }
        }
        self.entries.insert(path.to_vec(), node);
    }

    /// Removes the entry at `path` (its children, if any, stay).
    pub fn remove(&mut self, path: &[u8]) {
        self.entries.remove(path);
    }

    /// Whether there is a directory at `path`.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.entries.get(clean(path).as_slice()), Some(Node::Dir))
    }

    /// Adds a directory at `path`.
    pub fn add_dir(&mut self, path: &str) {
        self.insert(&clean(path), Node::Dir);
    }

    /// Adds a directory at `path` with `mode` (permission bits plus setuid/setgid/sticky, e.g.
    /// 0o1777 for `/tmp`) instead of 0755.
    pub fn add_dir_with_mode(&mut self, path: &str, mode: u32) {
        let key = clean(path);
        self.insert(&key, Node::Dir);
        self.dir_modes.insert(key, mode & 0o7777);
    }

    /// The mode the directory at `path` is written with.
    pub fn dir_mode(&self, path: &[u8]) -> u32 {
        self.dir_modes.get(path).copied().unwrap_or(0o755)
    }

    /// Adds a file with in-memory content.
    pub fn add_bytes(&mut self, path: &str, bytes: impl Into<Vec<u8>>, exec: bool) {
        self.insert(&clean(path), Node::File { source: FileSource::Bytes(bytes.into()), exec });
    }

    /// Adds a symlink.
    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.insert(&clean(path), Node::Symlink(target.as_bytes().to_vec()));
    }

    /// Adds the directory tree `dir` from disk at image path `prefix` (symlinks kept, hard
    /// links detected, devices and sockets skipped).
    pub fn add_tree(&mut self, prefix: &str, dir: &Path) -> Result<()> {
        let prefix = clean(prefix);
        self.insert(&prefix, Node::Dir);
        let mut inodes: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
        for entry in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
            let entry = entry.map_err(|e| ImageError::Io {
                path: e.path().unwrap_or(dir).to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap_or(path).as_os_str().as_bytes();
            let mut key = prefix.clone();
            key.push(b'/');
            key.extend_from_slice(rel);
            let meta = std::fs::symlink_metadata(path).at(path)?;
            let ft = meta.file_type();
            let node = if ft.is_symlink() {
                Node::Symlink(std::fs::read_link(path).at(path)?.into_os_string().into_vec())
            } else if ft.is_dir() {
                Node::Dir
            } else if ft.is_file() {
                if meta.nlink() > 1 {
                    inodes.entry((meta.dev(), meta.ino())).or_default().push(key.clone());
                }
                Node::File {
                    source: FileSource::Disk(path.to_path_buf()),
                    exec: meta.permissions().mode() & 0o111 != 0,
                }
            } else {
                continue;
            };
            self.insert(&key, node);
        }
        for mut paths in inodes.into_values().filter(|p| p.len() > 1) {
            paths.sort();
            let first = paths[0].clone();
            for other in &paths[1..] {
                self.entries.insert(other.clone(), Node::Hardlink(first.clone()));
            }
        }
        Ok(())
    }
}

/// A written layer blob.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// OCI media type.
    pub media_type: String,
    /// Tree hash of the entries below the requested root, if one was requested.
    pub tree_hash: Option<String>,
}

/// Writes `tree` as a compressed tar into `blobs_dir/<sha256 hex>` and returns its digests.
/// When `tree_root` is set, also computes the tree hash of the entries below that image path.
pub fn write_layer(
    tree: &LayerTree,
    opts: &LayerOptions,
    blobs_dir: &Path,
    tree_root: Option<&str>,
) -> Result<LayerBlob> {
    std::fs::create_dir_all(blobs_dir).at(blobs_dir)?;
    let tmp = tempfile::Builder::new().prefix(".layer-").tempfile_in(blobs_dir).at(blobs_dir)?;
    let out = tmp.reopen().at(tmp.path())?;
    let compression = opts.compression;
    let (tx, rx) = sync_channel::<Vec<u8>>(8);
    let compressor = std::thread::spawn(move || compress(rx, out, compression));
    let tar_result = write_tar(tree, opts, tx, tree_root.map(clean));
    let compressed = compressor.join().map_err(|_| ImageError::Io {
        path: tmp.path().to_path_buf(),
        source: io::Error::other("compressor thread panicked"),
    })?;
    let (diff_id, tree_hash) = tar_result?;
    let (digest, size) = compressed.at(tmp.path())?;
    let dest = blobs_dir.join(digest.trim_start_matches("sha256:"));
    tmp.persist(&dest).map_err(|e| ImageError::Io { path: dest.clone(), source: e.error })?;
    Ok(LayerBlob { digest, diff_id, size, media_type: compression.media_type().to_string(), tree_hash })
}

/// Sends written bytes to the compressor thread in owned chunks.
struct ChannelWriter(SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf.to_vec()).map_err(|_| io::Error::other("layer compressor stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress(rx: Receiver<Vec<u8>>, out: File, compression: Compression) -> io::Result<(String, u64)> {
    let sink = HashingWriter::new(BufWriter::with_capacity(1 << 20, out));
    let sink = match compression {
        Compression::Gzip { level } => {
            let mut enc = flate2::write::GzEncoder::new(sink, flate2::Compression::new(level));
            for chunk in rx {
                enc.write_all(&chunk)?;
            }
            enc.finish()?
        }
        Compression::Zstd { level } => {
            let mut enc = zstd::stream::write::Encoder::new(sink, level)?;
            // zstd's multi-threaded mode gives the same bytes for any worker count >= 1 (its
            // jobs are cut at fixed sizes; see the test), so every core can help while every
            // machine still writes the same layer. Single-threaded mode would differ: never used.
            enc.multithread(zstd_workers())?;
            for chunk in rx {
                enc.write_all(&chunk)?;
            }
            enc.finish()?
        }
    };
    let (mut buf, digest, size) = sink.finish();
    buf.flush()?;
    buf.into_inner().map_err(|e| e.into_error())?;
    Ok((digest, size))
}

/// zstd workers per layer: the machine's cores (at most 8; layers are also built in parallel).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u32)
}

/// Hashes what is read through it (for the tree hash).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

type TarSink = BufWriter<HashingWriter<ChannelWriter>>;

fn write_tar(
    tree: &LayerTree,
    opts: &LayerOptions,
    tx: SyncSender<Vec<u8>>,
    tree_root: Option<Vec<u8>>,
) -> Result<(String, Option<String>)> {
    let sink: TarSink = BufWriter::with_capacity(1 << 20, HashingWriter::new(ChannelWriter(tx)));
    let mut builder = tar::Builder::new(sink);
    builder.follow_symlinks(false);
    let mut tree_hasher = tree_root.as_ref().map(|_| TreeHasher::new());
    let mut file_hashes: HashMap<&[u8], String> = HashMap::new();
    let pipe_err = |path: &[u8], e: io::Error| ImageError::Io {
        path: PathBuf::from(String::from_utf8_lossy(path).into_owned()),
        source: e,
    };
    for (path, node) in &tree.entries {
        let rel = tree_root.as_ref().and_then(|root| {
            path.strip_prefix(root.as_slice()).and_then(|r| r.strip_prefix(b"/")).filter(|r| !r.is_empty())
        });
        let name = Path::new(std::ffi::OsStr::from_bytes(path));
        let (uid, gid) = opts.owner_of(path);
        let mut header = tar::Header::new_gnu();
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(opts.mtime);
        let record = match node {
            Node::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(tree.dir_mode(path));
                header.set_size(0);
                builder.append_data(&mut header, name, io::empty()).map_err(|e| pipe_err(path, e))?;
                TreeRecord::Dir
            }
            Node::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                let target_path = Path::new(std::ffi::OsStr::from_bytes(target));
                builder.append_link(&mut header, name, target_path).map_err(|e| pipe_err(path, e))?;
                TreeRecord::Symlink(target.clone())
            }
            Node::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                let target_path = Path::new(std::ffi::OsStr::from_bytes(target));
                builder.append_link(&mut header, name, target_path).map_err(|e| pipe_err(path, e))?;
                let exec = matches!(tree.entries.get(target), Some(Node::File { exec: true, .. }));
                TreeRecord::File { exec, sha256: file_hashes.get(target.as_slice()).cloned().unwrap_or_default() }
            }
            Node::File { source, exec } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *exec { 0o755 } else { 0o644 });
                let sha256 = match source {
                    FileSource::Bytes(bytes) => {
                        header.set_size(bytes.len() as u64);
                        builder.append_data(&mut header, name, bytes.as_slice()).map_err(|e| pipe_err(path, e))?;
                        hex::encode(Sha256::digest(bytes))
                    }
                    FileSource::Range(range) => {
                        header.set_size(range.len());
                        let mut reader = HashingReader { inner: range.reader(), hasher: Sha256::new() };
                        builder.append_data(&mut header, name, &mut reader).map_err(|e| pipe_err(path, e))?;
                        hex::encode(reader.hasher.finalize())
                    }
                    FileSource::Disk(disk) => {
                        let file = File::open(disk).at(disk)?;
                        let len = file.metadata().at(disk)?.len();
                        header.set_size(len);
                        let mut reader = HashingReader { inner: file.take(len), hasher: Sha256::new() };
                        builder.append_data(&mut header, name, &mut reader).map_err(|e| ImageError::Io {
                            path: disk.clone(),
                            source: io::Error::new(
                                e.kind(),
                                format!("{e} (did the file change while the layer was written?)"),
                            ),
                        })?;
                        hex::encode(reader.hasher.finalize())
                    }
                };
                file_hashes.insert(path.as_slice(), sha256.clone());
                TreeRecord::File { exec: *exec, sha256 }
            }
        };
        if let (Some(h), Some(rel)) = (tree_hasher.as_mut(), rel) {
            h.push(rel, record);
        }
    }
    let sink = builder.into_inner().map_err(|e| pipe_err(b"<tar end>", e))?;
    let hashing = sink.into_inner().map_err(|e| pipe_err(b"<tar end>", e.into_error()))?;
    let (_, diff_id, _) = hashing.finish();
    Ok((diff_id, tree_hasher.map(TreeHasher::finish)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o775)).unwrap();
        std::fs::write(dir.join("a-b"), b"x").unwrap();
        std::fs::hard_link(dir.join("a-b"), dir.join("z-hard")).unwrap();
        std::os::unix::fs::symlink("bin/tool", dir.join("link")).unwrap();
    }

    #[test]
    fn deterministic_sorted_headers_and_hardlinks() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let mut tree = LayerTree::new();
        tree.add_tree("opt/t/1.0", a.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let opts = LayerOptions { mtime: 1234, ..Default::default() };
        let blob = write_layer(&tree, &opts, out.path(), Some("opt/t/1.0")).unwrap();
        assert_eq!(blob.tree_hash.as_deref(), Some(crate::treehash::tree_hash_dir(a.path()).unwrap().as_str()));
        let again = write_layer(&tree, &opts, out.path(), Some("opt/t/1.0")).unwrap();
        assert_eq!(blob, again);

        let gz = File::open(out.path().join(blob.digest.trim_start_matches("sha256:"))).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()), (1234, 0, 0));
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            seen.push((String::from_utf8(e.path_bytes().to_vec()).unwrap(), h.entry_type(), h.mode().unwrap()));
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "opt",
                "opt/t",
                "opt/t/1.0",
                "opt/t/1.0/a-b",
                "opt/t/1.0/bin",
                "opt/t/1.0/bin/tool",
                "opt/t/1.0/link",
                "opt/t/1.0/z-hard"
            ]
        );
        assert_eq!(seen[5].2, 0o755);
        assert_eq!(seen[3].2, 0o644);
        assert_eq!(seen[6].1, tar::EntryType::Symlink);
        assert_eq!(seen[7].1, tar::EntryType::Link);
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_the_worker_count() {
        // 24 MB of compressible, non-repeating data: several zstd jobs at level 3.
        let mut data = Vec::with_capacity(24 << 20);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while data.len() < 24 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(format!("line {} value {}\n", x % 100_000, x % 7).as_bytes());
        }
        let compress = |workers: u32| {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            enc.multithread(workers).unwrap();
            enc.write_all(&data).unwrap();
            enc.finish().unwrap()
        };
        let one = compress(1);
        assert_eq!(compress(3), one);
        assert_eq!(zstd::decode_all(one.as_slice()).unwrap(), data);
    }

    #[test]
    fn user_home_ownership_and_zstd() {
        let mut tree = LayerTree::new();
        tree.add_bytes("home/sbx/.config/x", "y", false);
        let opts = LayerOptions {
            compression: Compression::Zstd { level: 3 },
            user_home: Some(("home/sbx".into(), 1000, 1000)),
            ..Default::default()
        };
        assert_eq!(opts.owner_of(b"home"), (0, 0));
        assert_eq!(opts.owner_of(b"home/sbx"), (1000, 1000));
        assert_eq!(opts.owner_of(b"home/sbx2"), (0, 0));
        let out = tempfile::tempdir().unwrap();
        let blob = write_layer(&tree, &opts, out.path(), None).unwrap();
        assert_eq!(blob.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        let bytes = std::fs::read(out.path().join(blob.digest.trim_start_matches("sha256:"))).unwrap();
        assert_eq!(crate::digest::sha256_digest(&bytes), blob.digest);
        let tar = zstd::decode_all(bytes.as_slice()).unwrap();
        assert_eq!(crate::digest::sha256_digest(&tar), blob.diff_id);
        let other = tempfile::tempdir().unwrap();
        assert_eq!(write_layer(&tree, &opts, other.path(), None).unwrap(), blob, "zstd output is deterministic");
    }
}
