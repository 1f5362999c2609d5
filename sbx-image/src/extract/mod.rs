//! Unpacks artifacts (tar.gz, tar.xz, tar.zst, tar, zip, single binaries) into a directory
//! ([`extract`]) or straight into a layer tree ([`add_archive`], what `sbx build` does for a
//! tool's artifact: no file is written per entry, so a large toolchain costs at most one
//! sequential decompression instead of thousands of file creations).
//!
//! Every entry is checked before it lands, the same way for both (see `checks`): no absolute
//! paths, no `..`, nothing written through a symlink, symlink targets that stay inside the
//! destination, hard links only to files unpacked before them. The error names the offending
//! entry. Modes keep only the permission bits; owners and times are not restored (the layer
//! writer sets its own).

mod checks;
mod disk;
mod tree;

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Arc;

use self::checks::{Content, Store, Unpacker};
use self::disk::DiskStore;
use self::tree::{Spool, TreeStore};
use crate::error::{ImageError, IoContext, Result};
use crate::layer::{FileRange, LayerTree, Node};

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
    /// Whether this is a tar, compressed or not.
    pub fn is_tar(self) -> bool {
        matches!(self, Self::Tar | Self::TarGz | Self::TarXz | Self::TarZst)
    }

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
    let strip_one = match (strip, kind.is_tar()) {
        (Strip::Auto, true) => {
            let names = tar_names(tar::Archive::new(decoder(archive, kind)?)).map_err(bad(archive))?;
            single_top_level(names.iter().map(String::as_str))
        }
        _ => strips(archive, kind, strip)?,
    };
    let mut unpacker = Unpacker { archive, store: DiskStore { archive, dest }, strip_one };
    match kind {
        ArchiveKind::Binary => add_binary(archive, binary_name, &mut unpacker),
        ArchiveKind::Zip => unpack_zip(archive, &mut unpacker),
        _ => {
            let mut ar = tar::Archive::new(decoder(archive, kind)?);
            unpack_tar(ar.entries().map_err(bad(archive))?, None, &mut unpacker)
        }
    }
}

/// Adds the entries of `archive` to `tree` below the image path `prefix`, with the same checks
/// and layout as [`extract`] but without writing them out: file entries reference their bytes
/// in the archive (an uncompressed tar or a single binary) or in an unnamed scratch file in
/// `scratch` (a compressed tar is decompressed there once; zip entries are appended there).
pub fn add_archive(
    tree: &mut LayerTree,
    prefix: &str,
    archive: &Path,
    kind: ArchiveKind,
    strip: Strip,
    binary_name: &str,
    scratch: &Path,
) -> Result<()> {
    let prefix = prefix.trim_matches('/').as_bytes().to_vec();
    tree.insert(&prefix, Node::Dir);
    let spool = Spool::new(scratch);
    // A tar is read from an uncompressed file, so that its entries are ranges of that file.
    let tar_file = match kind {
        ArchiveKind::Tar => Some(Arc::new(File::open(archive).at(archive)?)),
        ArchiveKind::TarGz | ArchiveKind::TarXz | ArchiveKind::TarZst => {
            Some(spool.decode_to_file(archive, &mut decoder(archive, kind)?)?)
        }
        ArchiveKind::Zip | ArchiveKind::Binary => None,
    };
    let strip_one = match &tar_file {
        Some(file) if strip == Strip::Auto => {
            let names = tar_names(seekable(file).map_err(bad(archive))?).map_err(bad(archive))?;
            single_top_level(names.iter().map(String::as_str))
        }
        _ => strips(archive, kind, strip)?,
    };
    let mut unpacker = Unpacker { archive, store: TreeStore { archive, tree, prefix, spool }, strip_one };
    match &tar_file {
        Some(file) => {
            let mut ar = seekable(file).map_err(bad(archive))?;
            unpack_tar(ar.entries_with_seek().map_err(bad(archive))?, Some(file), &mut unpacker)?
        }
        None if kind == ArchiveKind::Zip => unpack_zip(archive, &mut unpacker)?,
        None => add_binary(archive, binary_name, &mut unpacker)?,
    }
    unpacker.store.link_shared_files();
    Ok(())
}

fn bad(archive: &Path) -> impl Fn(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() }
}

/// Whether to strip the first component; an auto-stripped tar is decided from its names, and a
/// single binary has no path to strip (it always goes to `bin/<name>`).
fn strips(archive: &Path, kind: ArchiveKind, strip: Strip) -> Result<bool> {
    if kind == ArchiveKind::Binary {
        return Ok(false);
    }
    Ok(match strip {
        Strip::None => false,
        Strip::One => true,
        Strip::Auto => match kind {
            ArchiveKind::Zip => single_top_level(zip_names(archive)?.iter().map(String::as_str)),
            _ => false,
        },
    })
}

/// The decompressed tar stream of `archive`.
fn decoder(archive: &Path, kind: ArchiveKind) -> Result<Box<dyn Read>> {
    let file = BufReader::with_capacity(1 << 20, File::open(archive).at(archive)?);
    Ok(match kind {
        ArchiveKind::TarGz => Box::new(flate2::read::MultiGzDecoder::new(file)),
        ArchiveKind::TarXz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
        ArchiveKind::TarZst => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(bad(archive))?),
        _ => Box::new(file),
    })
}

/// A tar archive over an uncompressed file, read from its start (entries are skipped by seeking).
fn seekable(file: &Arc<File>) -> std::io::Result<tar::Archive<&File>> {
    let mut reader = &**file;
    reader.rewind()?;
    Ok(tar::Archive::new(reader))
}

fn tar_names<R: Read>(mut ar: tar::Archive<R>) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in ar.entries()? {
        names.push(String::from_utf8_lossy(&entry?.path_bytes()).into_owned());
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

fn add_binary<S: Store>(archive: &Path, binary_name: &str, unpacker: &mut Unpacker<S>) -> Result<()> {
    let file = File::open(archive).at(archive)?;
    let len = file.metadata().at(archive)?.len();
    let entry = format!("bin/{binary_name}");
    let rel = unpacker.relative(&entry)?.ok_or_else(|| unpacker.refuse(&entry, "is not a file name"))?;
    unpacker.file(&entry, &rel, 0o755, Content::Range(FileRange::new(Arc::new(file), 0, len)))
}

/// Unpacks tar entries. With `data`, the uncompressed tar file they are read from, regular
/// files are handed over as ranges of it instead of being copied.
fn unpack_tar<R: Read, S: Store>(
    entries: tar::Entries<R>,
    data: Option<&Arc<File>>,
    unpacker: &mut Unpacker<S>,
) -> Result<()> {
    let archive = unpacker.archive;
    let data = match data {
        Some(file) => Some((file, file.metadata().at(archive)?.len())),
        None => None,
    };
    for entry in entries {
        let mut entry = entry.map_err(bad(archive))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = unpacker.relative(&name)? else { continue };
        let mode = entry.header().mode().unwrap_or(0o644);
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Directory => unpacker.dir(&name, &rel, mode)?,
            T::Regular | T::Continuous => match data {
                Some((file, total)) => {
                    let (offset, len) = (entry.raw_file_position(), entry.size());
                    if offset.saturating_add(len) > total {
                        return Err(ImageError::Archive {
                            archive: archive.to_path_buf(),
                            message: format!("{name}: the archive ends inside this entry (truncated?)"),
                        });
                    }
                    unpacker.file(&name, &rel, mode, Content::Range(FileRange::new(file.clone(), offset, len)))?
                }
                None => unpacker.file(&name, &rel, mode, Content::Stream(&mut entry))?,
            },
            T::GNUSparse => unpacker.file(&name, &rel, mode, Content::Stream(&mut entry))?,
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad(archive))?
                    .ok_or_else(|| unpacker.refuse(&name, "is a symlink without a target"))?;
                unpacker.symlink(&name, &rel, &target)?
            }
            T::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| unpacker.refuse(&name, "is a hard link without a target"))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                unpacker.hardlink(&name, &rel, &target)?
            }
            // PAX/GNU metadata entries are consumed by the tar crate; devices and fifos are skipped.
            _ => {}
        }
    }
    Ok(())
}

fn unpack_zip<S: Store>(archive: &Path, unpacker: &mut Unpacker<S>) -> Result<()> {
    let bad = |e: zip::result::ZipError| ImageError::Archive { archive: archive.to_path_buf(), message: e.to_string() };
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(archive).at(archive)?)).map_err(bad)?;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(bad)?;
        let name = file.name().map_err(bad)?.into_owned();
        let Some(rel) = unpacker.relative(&name)? else { continue };
        let mode = file.unix_mode().unwrap_or(0o644);
        if file.is_dir() {
            unpacker.dir(&name, &rel, mode)?;
        } else if file.is_symlink() {
            let mut target = String::new();
            file.read_to_string(&mut target)
                .map_err(|e| ImageError::Archive { archive: archive.to_path_buf(), message: format!("{name}: {e}") })?;
            unpacker.symlink(&name, &rel, Path::new(&target))?;
        } else {
            unpacker.file(&name, &rel, mode, Content::Stream(&mut file))?;
        }
    }
    Ok(())
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
