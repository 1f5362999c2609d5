//! Unpacks artifacts (tar.gz, tar.xz, tar.zst, tar, zip, single binaries) into a directory.
//!
//! Every entry is checked before it is written: no absolute paths, no `..`, nothing written
//! through a symlink, symlink targets that stay inside the directory (resolved lexically, and a
//! `..` may not climb out of another symlink), hard links only to files already extracted.
//! The error names the offending entry. Modes keep only the permission bits; owners and times
//! are not restored (the layer writer sets its own).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::{ImageError, IoContext, Result};

/// The container format of an artifact, guessed from its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `.tar.gz` / `.tgz`.
    TarGz,
    /// `.tar.xz` / `.txz`.
    TarXz,
    /// `.tar.zst` / `.tzst`.
    TarZst,
    /// Plain `.tar`.
    Tar,
    /// `.zip`.
    Zip,
    /// Anything else: a single executable.
    Binary,
}

impl ArchiveKind {
    /// Guesses the format from a URL or file name (query and fragment ignored).
    pub fn from_name(name: &str) -> Self {
        let name = name.split(['?', '#']).next().unwrap_or(name).to_ascii_lowercase();
        let ends = |s: &[&str]| s.iter().any(|e| name.ends_with(e));
        if ends(&[".tar.gz", ".tgz"]) {
            Self::TarGz
        } else if ends(&[".tar.xz", ".txz"]) {
            Self::TarXz
        } else if ends(&[".tar.zst", ".tzst"]) {
            Self::TarZst
        } else if ends(&[".tar"]) {
            Self::Tar
        } else if ends(&[".zip"]) {
            Self::Zip
        } else {
            Self::Binary
        }
    }
}

/// What to do with a leading directory shared by every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strip {
    /// Keep paths as they are.
    None,
    /// Drop the first component of every path (mise's `strip_components = 1` for node, go, python).
    One,
    /// Drop the first component only when every entry sits under one top-level directory
    /// (what mise does for GitHub release archives).
    Auto,
}

/// Extracts `archive` into `dest` (created if missing). `binary_name` names the file for
/// [`ArchiveKind::Binary`], which is placed at `dest/bin/<binary_name>` with mode 0755.
pub fn extract(archive: &Path, kind: ArchiveKind, dest: &Path, strip: Strip, binary_name: &str) -> Result<()> {
    std::fs::create_dir_all(dest).at(dest)?;
    let open =
        || -> Result<BufReader<File>> { Ok(BufReader::with_capacity(1 << 20, File::open(archive).at(archive)?)) };
    let bad = |e: std::io::Error| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() };
    let strip_one = match strip {
        Strip::None => false,
        Strip::One => true,
        Strip::Auto => match kind {
            ArchiveKind::Zip => single_top_level(zip_names(archive)?.iter().map(String::as_str)),
            ArchiveKind::Binary => false,
            _ => {
                let names = tar_names(tar_reader(kind, open()?).map_err(bad)?).map_err(bad)?;
                single_top_level(names.iter().map(String::as_str))
            }
        },
    };
    let mut sink = Sink { archive, dest, strip_one };
    match kind {
        ArchiveKind::Binary => {
            let bin = dest.join("bin");
            std::fs::create_dir_all(&bin).at(&bin)?;
            let target = bin.join(binary_name);
            std::fs::copy(archive, &target).at(&target)?;
            set_mode(&target, 0o755)
        }
        ArchiveKind::Zip => extract_zip(archive, &mut sink),
        _ => extract_tar(tar_reader(kind, open()?).map_err(bad)?, &mut sink),
    }
}

fn tar_reader(kind: ArchiveKind, file: BufReader<File>) -> std::io::Result<Box<dyn Read>> {
    Ok(match kind {
        ArchiveKind::TarGz => Box::new(flate2::read::MultiGzDecoder::new(file)),
        ArchiveKind::TarXz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
        ArchiveKind::TarZst => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        _ => Box::new(file),
    })
}

fn tar_names(reader: Box<dyn Read>) -> std::io::Result<Vec<String>> {
    let mut ar = tar::Archive::new(reader);
    let mut names = Vec::new();
    for entry in ar.entries()? {
        let entry = entry?;
        names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
    }
    Ok(names)
}

fn zip_names(archive: &Path) -> Result<Vec<String>> {
    let zip = zip::ZipArchive::new(File::open(archive).at(archive)?)
        .map_err(|e| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() })?;
    zip.file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() })
}

/// True when every name has a first component and they all share it, and at least one entry
/// lies below it.
fn single_top_level<'a>(names: impl Iterator<Item = &'a str>) -> bool {
    let mut top: Option<String> = None;
    let mut nested = false;
    for name in names {
        let name = name.trim_start_matches("./");
        if name.is_empty() || name == "." {
            continue;
        }
        let (first, rest) = name.split_once('/').unwrap_or((name, ""));
        nested |= !rest.trim_matches('/').is_empty();
        match &top {
            None => top = Some(first.to_string()),
            Some(t) if t == first => {}
            Some(_) => return false,
        }
    }
    top.is_some() && nested
}

/// Where entries go, with the checks shared by tar and zip.
struct Sink<'a> {
    archive: &'a Path,
    dest: &'a Path,
    strip_one: bool,
}

impl Sink<'_> {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry { archive: self.archive.to_path_buf(), entry: entry.to_string(), reason: reason.into() }
    }

    /// The entry's path relative to `dest` (after stripping), or `None` for the stripped root.
    fn relative(&self, entry: &str) -> Result<Option<PathBuf>> {
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

    /// Creates the parents of `rel`, refusing to go through a symlink.
    fn prepare(&self, entry: &str, rel: &Path) -> Result<PathBuf> {
        let mut at = self.dest.to_path_buf();
        if let Some(parent) = rel.parent() {
            for comp in parent.components() {
                at.push(comp);
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(self.refuse(entry, "would be written through a symlink"));
                    }
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(self.refuse(entry, "has a parent that is not a directory")),
                    Err(_) => std::fs::create_dir(&at).at(&at)?,
                }
            }
        }
        let full = self.dest.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&full)
            && !m.is_dir()
        {
            std::fs::remove_file(&full).at(&full)?;
        }
        Ok(full)
    }

    fn dir(&self, entry: &str, rel: &Path, mode: u32) -> Result<()> {
        let full = self.prepare(entry, rel)?;
        if !full.is_dir() {
            std::fs::create_dir(&full).at(&full)?;
        }
        set_mode(&full, (mode & 0o777) | 0o700)
    }

    fn file(&self, entry: &str, rel: &Path, mode: u32, data: &mut dyn Read) -> Result<()> {
        let full = self.prepare(entry, rel)?;
        let mut out = File::create(&full).at(&full)?;
        std::io::copy(data, &mut out).map_err(|e| ImageError::Archive {
            archive: self.archive.to_path_buf(),
            message: format!("{entry}: {e}"),
        })?;
        set_mode(&full, (mode & 0o777) | 0o600)
    }

    fn symlink(&self, entry: &str, rel: &Path, target: &Path) -> Result<()> {
        if target.has_root() {
            return Err(self.refuse(entry, format!("is a symlink to the absolute path {}", target.display())));
        }
        // Resolve lexically from the link's directory; each `..` may only climb out of a real
        // directory (not a symlink already extracted), and never above `dest`.
        let mut at: Vec<Component> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
        for comp in target.components() {
            match comp {
                Component::Normal(_) => at.push(comp),
                Component::CurDir => {}
                Component::ParentDir => {
                    let here: PathBuf = at.iter().collect();
                    if std::fs::symlink_metadata(self.dest.join(&here)).is_ok_and(|m| m.file_type().is_symlink()) {
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
        let full = self.prepare(entry, rel)?;
        std::os::unix::fs::symlink(target, &full).at(&full)
    }

    fn hardlink(&self, entry: &str, rel: &Path, target: &str) -> Result<()> {
        let Some(target_rel) = self
            .relative(target)
            .map_err(|_| self.refuse(entry, format!("is a hard link pointing outside the archive ({target})")))?
        else {
            return Err(self.refuse(entry, "is a hard link to the archive root"));
        };
        let source = self.dest.join(&target_rel);
        match std::fs::symlink_metadata(&source) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(self
                    .refuse(entry, format!("is a hard link to `{target}`, which is not a file extracted before it")));
            }
        }
        // The target's own parents were checked when it was written; check it is not reached
        // through a symlink now.
        let canon = source.canonicalize().at(&source)?;
        let root = self.dest.canonicalize().at(self.dest)?;
        if !canon.starts_with(&root) {
            return Err(self.refuse(entry, format!("is a hard link pointing outside the archive ({target})")));
        }
        let full = self.prepare(entry, rel)?;
        std::fs::hard_link(&source, &full).at(&full)
    }
}

fn extract_tar(reader: Box<dyn Read>, sink: &mut Sink) -> Result<()> {
    let bad = |e: std::io::Error| ImageError::Archive { archive: sink.archive.to_path_buf(), message: e.to_string() };
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = sink.relative(&name)? else { continue };
        let mode = entry.header().mode().unwrap_or(0o644);
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Directory => sink.dir(&name, &rel, mode)?,
            T::Regular | T::Continuous | T::GNUSparse => sink.file(&name, &rel, mode, &mut entry)?,
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| sink.refuse(&name, "is a symlink without a target"))?;
                sink.symlink(&name, &rel, &target)?
            }
            T::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| sink.refuse(&name, "is a hard link without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                sink.hardlink(&name, &rel, &target)?
            }
            // PAX/GNU metadata entries are consumed by the tar crate; devices and fifos are skipped.
            _ => {}
        }
    }
    Ok(())
}

fn extract_zip(archive: &Path, sink: &mut Sink) -> Result<()> {
    let bad = |e: zip::result::ZipError| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() };
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(archive).at(archive)?)).map_err(bad)?;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(bad)?;
        let name = file.name().map_err(bad)?.into_owned();
        let Some(rel) = sink.relative(&name)? else { continue };
        let mode = file.unix_mode().unwrap_or(0o644);
        if file.is_dir() {
            sink.dir(&name, &rel, mode)?;
        } else if file.is_symlink() {
            let mut target = String::new();
            file.read_to_string(&mut target)
                .map_err(|e| ImageError::Archive { archive: archive.to_path_buf(), message: format!("{name}: {e}") })?;
            sink.symlink(&name, &rel, Path::new(&target))?;
        } else {
            sink.file(&name, &rel, mode, &mut file)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_urls() {
        assert_eq!(ArchiveKind::from_name("https://x/node-v22.tar.gz?x=1"), ArchiveKind::TarGz);
        assert_eq!(ArchiveKind::from_name("a.TXZ"), ArchiveKind::TarXz);
        assert_eq!(ArchiveKind::from_name("a.tar.zst"), ArchiveKind::TarZst);
        assert_eq!(ArchiveKind::from_name("a.zip"), ArchiveKind::Zip);
        assert_eq!(ArchiveKind::from_name("jq-linux-amd64"), ArchiveKind::Binary);
    }

    #[test]
    fn top_level_detection() {
        assert!(single_top_level(["node/", "node/bin/node"].into_iter()));
        assert!(single_top_level(["./go/bin/go", "go/LICENSE"].into_iter()));
        assert!(!single_top_level(["rg", "README"].into_iter()));
        assert!(!single_top_level(["only-file"].into_iter()));
    }
}
