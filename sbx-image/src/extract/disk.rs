//! [`Store`] for a directory on disk: what npm packages and wheels are unpacked into before
//! their install layout is finished.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::checks::{Content, Kind, Store};
use crate::error::{ImageError, IoContext, Result};

/// Unpacks into `dest`.
pub(crate) struct DiskStore<'a> {
    pub(crate) archive: &'a Path,
    pub(crate) dest: &'a Path,
}

impl DiskStore<'_> {
    fn full(&self, rel: &Path) -> PathBuf {
        self.dest.join(rel)
    }
}

impl Store for DiskStore<'_> {
    fn kind_at(&mut self, rel: &Path) -> Result<Option<Kind>> {
        Ok(std::fs::symlink_metadata(self.full(rel)).ok().map(|m| {
            if m.file_type().is_symlink() {
                Kind::Symlink
            } else if m.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            }
        }))
    }

    fn make_dir(&mut self, rel: &Path) -> Result<()> {
        let full = self.full(rel);
        std::fs::create_dir(&full).at(&full)
    }

    fn set_dir_mode(&mut self, rel: &Path, mode: u32) -> Result<()> {
        set_mode(&self.full(rel), mode)
    }

    fn remove(&mut self, rel: &Path) -> Result<()> {
        let full = self.full(rel);
        std::fs::remove_file(&full).at(&full)
    }

    fn write_file(&mut self, entry: &str, rel: &Path, mode: u32, content: Content) -> Result<()> {
        let full = self.full(rel);
        let mut out = File::create(&full).at(&full)?;
        let copied = match content {
            Content::Stream(data) => std::io::copy(data, &mut out),
            Content::Range(range) => std::io::copy(&mut range.reader(), &mut out),
        };
        copied.map_err(|e| ImageError::Archive {
            archive: self.archive.to_path_buf(),
            message: format!("{entry}: {e}"),
        })?;
        set_mode(&full, mode)
    }

    fn symlink(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let full = self.full(rel);
        std::os::unix::fs::symlink(target, &full).at(&full)
    }

    fn hard_link(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let full = self.full(rel);
        std::fs::hard_link(self.full(target), &full).at(&full)
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).at(path)
}
