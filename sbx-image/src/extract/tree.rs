//! [`Store`] for a [`LayerTree`]: an archive's entries become layer entries without being
//! written out as files. A file's bytes stay where they are — a range of the uncompressed tar
//! or of the artifact itself — or, when they come from a decoder (zip entries, sparse tar
//! entries), are appended to an unnamed scratch file and referenced by range. The layer writer
//! reads them from there.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checks::{Content, Kind, Store};
use crate::error::{ImageError, IoContext, Result};
use crate::layer::{FileRange, FileSource, LayerTree, Node};

/// Unpacks into `tree` below the image path `prefix`.
pub(crate) struct TreeStore<'a> {
    pub(crate) archive: &'a Path,
    pub(crate) tree: &'a mut LayerTree,
    pub(crate) prefix: Vec<u8>,
    pub(crate) spool: Spool,
}

impl TreeStore<'_> {
    fn key(&self, rel: &Path) -> Vec<u8> {
        let mut key = self.prefix.clone();
        let rel = rel.as_os_str().as_bytes();
        if !rel.is_empty() {
            key.push(b'/');
            key.extend_from_slice(rel);
        }
        key
    }

    /// Entries that were hard links in the archive share their target's bytes; the first of
    /// each group in path order stays a file and the others become hard links to it (what
    /// [`LayerTree::add_tree`] does for files sharing an inode).
    pub(crate) fn link_shared_files(self) {
        let mut groups: HashMap<FileRange, Vec<Vec<u8>>> = HashMap::new();
        let under = |k: &[u8]| k.starts_with(&self.prefix) && k.get(self.prefix.len()) == Some(&b'/');
        for (key, node) in self.tree.entries() {
            if let Node::File { source: FileSource::Range(range), .. } = node
                && under(key)
            {
                groups.entry(range.clone()).or_default().push(key.clone());
            }
        }
        for mut paths in groups.into_values().filter(|p| p.len() > 1) {
            paths.sort();
            for other in &paths[1..] {
                self.tree.insert(other, Node::Hardlink(paths[0].clone()));
            }
        }
    }
}

impl Store for TreeStore<'_> {
    fn kind_at(&mut self, rel: &Path) -> Result<Option<Kind>> {
        Ok(self.tree.entries().get(&self.key(rel)).map(|node| match node {
            Node::Dir => Kind::Dir,
            Node::File { .. } | Node::Hardlink(_) => Kind::File,
            Node::Symlink(_) => Kind::Symlink,
        }))
    }

    fn make_dir(&mut self, rel: &Path) -> Result<()> {
        let key = self.key(rel);
        self.tree.insert(&key, Node::Dir);
        Ok(())
    }

    fn set_dir_mode(&mut self, _rel: &Path, _mode: u32) -> Result<()> {
        // Tool directories are written 0755 whatever the archive says (as from disk).
        Ok(())
    }

    fn remove(&mut self, rel: &Path) -> Result<()> {
        let key = self.key(rel);
        self.tree.remove(&key);
        Ok(())
    }

    fn write_file(&mut self, entry: &str, rel: &Path, mode: u32, content: Content) -> Result<()> {
        let range = match content {
            Content::Range(range) => range,
            Content::Stream(data) => self.spool.append(data).map_err(|e| ImageError::Archive {
                archive: self.archive.to_path_buf(),
                message: format!("{entry}: {e}"),
            })?,
        };
        let key = self.key(rel);
        self.tree.insert(&key, Node::File { source: FileSource::Range(range), exec: mode & 0o111 != 0 });
        Ok(())
    }

    fn symlink(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let key = self.key(rel);
        self.tree.insert(&key, Node::Symlink(target.as_os_str().as_bytes().to_vec()));
        Ok(())
    }

    fn hard_link(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let node = self.tree.entries().get(&self.key(target)).cloned();
        let node = match node {
            Some(Node::Hardlink(first)) => self.tree.entries().get(&first).cloned(),
            other => other,
        };
        if let Some(node @ Node::File { .. }) = node {
            let key = self.key(rel);
            self.tree.insert(&key, node);
        }
        Ok(())
    }
}

/// An unnamed scratch file (created on first use in `dir`, gone when the last range of it is
/// dropped) that decoded bytes are appended to.
pub(crate) struct Spool {
    dir: PathBuf,
    file: Option<Arc<File>>,
    end: u64,
}

impl Spool {
    /// A spool whose file, if one is needed, lives in `dir`.
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), file: None, end: 0 }
    }

    /// Appends everything `data` yields and returns where it went.
    pub(crate) fn append(&mut self, data: &mut dyn Read) -> std::io::Result<FileRange> {
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(tempfile::tempfile_in(&self.dir)?);
                self.file = Some(file.clone());
                file
            }
        };
        let mut out = BufWriter::with_capacity(1 << 18, &*file);
        let len = std::io::copy(data, &mut out)?;
        out.flush()?;
        drop(out);
        let range = FileRange::new(file, self.end, len);
        self.end += len;
        Ok(range)
    }

    /// A whole decoded stream in a scratch file of its own (a compressed tar, decompressed so
    /// that its entries can be referenced by range).
    pub(crate) fn decode_to_file(&self, archive: &Path, data: &mut dyn Read) -> Result<Arc<File>> {
        let file = tempfile::tempfile_in(&self.dir).at(&self.dir)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        std::io::copy(data, &mut out)
            .and_then(|_| out.flush())
            .map_err(|e| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() })?;
        drop(out);
        Ok(Arc::new(file))
    }
}
