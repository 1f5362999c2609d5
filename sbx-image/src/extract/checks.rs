//! The safety rules every archive entry passes before it lands anywhere, written once against
//! [`Store`], which a directory on disk and a layer tree both implement.
//!
//! No absolute paths, no `..`, nothing written through a symlink, symlink targets that stay
//! inside the destination (resolved lexically, and a `..` may not climb out of another symlink),
//! hard links only to files unpacked before them. Errors name the offending entry.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{ImageError, Result};
use crate::layer::FileRange;

/// What is at a path of a [`Store`] (symlinks not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
}

/// A file entry's bytes.
pub(crate) enum Content<'a> {
    /// Bytes read from a decoder (a compressed tar stream, a zip entry, a sparse tar entry).
    Stream(&'a mut dyn Read),
    /// A byte range of a file on disk (an entry of an uncompressed tar, a single binary).
    Range(FileRange),
}

/// Where unpacked entries go. Paths are relative to the destination and already checked.
pub(crate) trait Store {
    /// What is at `rel`, if anything.
    fn kind_at(&mut self, rel: &Path) -> Result<Option<Kind>>;
    /// Creates the directory `rel` (its parent exists).
    fn make_dir(&mut self, rel: &Path) -> Result<()>;
    /// Records the permission bits of the directory `rel`.
    fn set_dir_mode(&mut self, rel: &Path, mode: u32) -> Result<()>;
    /// Removes the non-directory at `rel`.
    fn remove(&mut self, rel: &Path) -> Result<()>;
    /// Writes the file `rel` with permission bits `mode`; `entry` names it in errors.
    fn write_file(&mut self, entry: &str, rel: &Path, mode: u32, content: Content) -> Result<()>;
    /// Creates the symlink `rel` → `target`.
    fn symlink(&mut self, rel: &Path, target: &Path) -> Result<()>;
    /// Makes `rel` a hard link to the file `target` (unpacked before it).
    fn hard_link(&mut self, rel: &Path, target: &Path) -> Result<()>;
}

/// Applies the rules to entries of one archive and hands them to the store.
pub(crate) struct Unpacker<'a, S> {
    pub(crate) archive: &'a Path,
    pub(crate) store: S,
    pub(crate) strip_one: bool,
}

impl<S: Store> Unpacker<'_, S> {
    pub(crate) fn refuse(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry { archive: self.archive.to_path_buf(), entry: entry.to_string(), reason: reason.into() }
    }

    /// The entry's path relative to the destination (after stripping), or `None` for the
    /// stripped root.
    pub(crate) fn relative(&self, entry: &str) -> Result<Option<PathBuf>> {
        if entry.starts_with('/') {
            return Err(self.refuse(entry, "has an absolute path"));
        }
        let mut parts = Vec::new();
        for comp in Path::new(entry).components() {
            match comp {
                Component::Normal(p) => parts.push(p),
                Component::CurDir => {}
                Component::ParentDir => return Err(self.refuse(entry, "contains `..`")),
                Component::RootDir | Component::Prefix(_) => return Err(self.refuse(entry, "has an absolute path")),
            }
        }
        let skip = usize::from(self.strip_one);
        if parts.len() <= skip {
            return Ok(None);
        }
        Ok(Some(parts[skip..].iter().collect()))
    }

    /// Creates the parents of `rel`, refusing to go through a symlink, and removes a
    /// non-directory already at `rel`. Returns what remains at `rel` (a directory or nothing).
    fn prepare(&mut self, entry: &str, rel: &Path) -> Result<Option<Kind>> {
        let mut at = PathBuf::new();
        if let Some(parent) = rel.parent() {
            for comp in parent.components() {
                at.push(comp);
                match self.store.kind_at(&at)? {
                    Some(Kind::Symlink) => return Err(self.refuse(entry, "would be written through a symlink")),
                    Some(Kind::Dir) => {}
                    Some(Kind::File) => return Err(self.refuse(entry, "has a parent that is not a directory")),
                    None => self.store.make_dir(&at)?,
                }
            }
        }
        match self.store.kind_at(rel)? {
            Some(Kind::Dir) => Ok(Some(Kind::Dir)),
            Some(_) => {
                self.store.remove(rel)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub(crate) fn dir(&mut self, entry: &str, rel: &Path, mode: u32) -> Result<()> {
        if self.prepare(entry, rel)?.is_none() {
            self.store.make_dir(rel)?;
        }
        self.store.set_dir_mode(rel, (mode & 0o777) | 0o700)
    }

    pub(crate) fn file(&mut self, entry: &str, rel: &Path, mode: u32, content: Content) -> Result<()> {
        if self.prepare(entry, rel)?.is_some() {
            return Err(self.refuse(entry, "is a file where a directory was unpacked before"));
        }
        self.store.write_file(entry, rel, (mode & 0o777) | 0o600, content)
    }

    pub(crate) fn symlink(&mut self, entry: &str, rel: &Path, target: &Path) -> Result<()> {
        if target.has_root() {
            return Err(self.refuse(entry, format!("is a symlink to the absolute path {}", target.display())));
        }
        // Resolve lexically from the link's directory; each `..` may only climb out of a real
        // directory (not a symlink already unpacked), and never above the destination.
        let mut at: Vec<Component> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
        for comp in target.components() {
            match comp {
                Component::Normal(_) => at.push(comp),
                Component::CurDir => {}
                Component::ParentDir => {
                    let here: PathBuf = at.iter().collect();
                    if !at.is_empty() && self.store.kind_at(&here)? == Some(Kind::Symlink) {
                        return Err(self.refuse(
                            entry,
                            format!("is a symlink whose target {} climbs out of another symlink", target.display()),
                        ));
                    }
                    if at.pop().is_none() {
                        return Err(self.refuse(
                            entry,
                            format!("is a symlink pointing outside the archive ({})", target.display()),
                        ));
                    }
                }
                _ => return Err(self.refuse(entry, "has an invalid symlink target")),
            }
        }
        if self.prepare(entry, rel)?.is_some() {
            return Err(self.refuse(entry, "is a symlink where a directory was unpacked before"));
        }
        self.store.symlink(rel, target)
    }

    pub(crate) fn hardlink(&mut self, entry: &str, rel: &Path, target: &str) -> Result<()> {
        let Some(target_rel) = self
            .relative(target)
            .map_err(|_| self.refuse(entry, format!("is a hard link pointing outside the archive ({target})")))?
        else {
            return Err(self.refuse(entry, "is a hard link to the archive root"));
        };
        if self.store.kind_at(&target_rel)? != Some(Kind::File) {
            return Err(
                self.refuse(entry, format!("is a hard link to `{target}`, which is not a file unpacked before it"))
            );
        }
        // The target's parents were checked when it was written, and a directory is never
        // replaced by a symlink afterwards; check anyway that none is a symlink now.
        let mut at = PathBuf::new();
        for comp in target_rel.parent().into_iter().flat_map(Path::components) {
            at.push(comp);
            if self.store.kind_at(&at)? != Some(Kind::Dir) {
                return Err(self.refuse(entry, format!("is a hard link pointing outside the archive ({target})")));
            }
        }
        if self.prepare(entry, rel)?.is_some() {
            return Err(self.refuse(entry, "is a hard link where a directory was unpacked before"));
        }
        self.store.hard_link(rel, &target_rel)
    }
}
