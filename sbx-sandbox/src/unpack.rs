//! Applying one OCI layer (tar, gzip or zstd) onto a root directory: whiteouts, opaque
//! directories, path-escape refusal, digest verification.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::oci::LayerBlob;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

struct HashingReader<R> {
    inner: R,
    hasher: Rc<RefCell<Sha256>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// Applies `layer` on top of `root`, verifying the blob's sha256 digest.
pub fn apply_layer(root: &Path, layer: &LayerBlob) -> Result<()> {
    let file = File::open(&layer.path).map_err(Error::io("opening image layer", &layer.path))?;
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let magic = buffered.fill_buf().map_err(Error::io("reading image layer", &layer.path))?.to_vec();
    let hasher = Rc::new(RefCell::new(Sha256::new()));
    let hashing = HashingReader { inner: buffered, hasher: hasher.clone() };
    let decoded: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(hashing))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(hashing).map_err(Error::io("starting zstd", &layer.path))?)
    } else {
        Box::new(hashing)
    };
    let mut archive = tar::Archive::new(decoded);
    // Only root can give files their image owners; everyone else gets their own uid.
    // SAFETY: geteuid has no preconditions.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    apply_entries(root, &mut archive, layer)?;
    // Drain trailing padding so the digest covers the whole blob.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(Error::io("reading image layer", &layer.path))?;
    drop(rest);
    let actual = format!("sha256:{}", hex::encode(hasher.borrow().clone().finalize()));
    if layer.digest.starts_with("sha256:") && actual != layer.digest {
        return Err(Error::image(
            &layer.path,
            format!("layer digest mismatch: expected {}, got {actual}", layer.digest),
        ));
    }
    Ok(())
}

/// Turns a tar entry path into a clean relative path, refusing `..` components.
fn clean_path(raw: &Path, layer: &LayerBlob) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::PathEscape { layer: layer.digest.clone(), entry: raw.display().to_string() });
            }
        }
    }
    Ok(out)
}

/// Refuses a path whose existing parent directories include a symlink (a layer could otherwise
/// point a directory outside the root and write through it).
fn check_parents(root: &Path, rel: &Path, layer: &LayerBlob) -> Result<()> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else { return Ok(()) };
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::PathEscape {
                    layer: layer.digest.clone(),
                    entry: format!("{} (through symlink {})", rel.display(), cur.display()),
                });
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the children of `dir` that lower layers put there (opaque whiteout), keeping what
/// this layer already wrote.
fn make_opaque(root: &Path, dir: &Path, seen: &HashSet<PathBuf>) -> io::Result<()> {
    let abs = root.join(dir);
    let entries = match fs::read_dir(&abs) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let rel = dir.join(entry.file_name());
        if !seen.contains(&rel) {
            remove_any(&entry.path())?;
        } else if entry.file_type()?.is_dir() {
            make_opaque(root, &rel, seen)?;
        }
    }
    Ok(())
}

fn apply_entries<R: Read>(root: &Path, archive: &mut tar::Archive<R>, layer: &LayerBlob) -> Result<()> {
    let io_err = |e: io::Error| Error::image(&layer.path, format!("layer {} is unreadable: {e}", layer.digest));
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let raw = entry.path().map_err(io_err)?.into_owned();
        let rel = clean_path(&raw, layer)?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
        check_parents(root, &rel, layer)?;
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if name == OPAQUE {
            make_opaque(root, &parent, &seen).map_err(Error::io("applying opaque whiteout", root.join(&parent)))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = root.join(&parent).join(hidden);
            remove_any(&target).map_err(Error::io("applying whiteout", target))?;
            continue;
        }
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            continue; // devices come from the runtime's /dev, never from an image
        }
        let dst = root.join(&rel);
        if let Ok(existing) = fs::symlink_metadata(&dst) {
            let replace = !(kind.is_dir() && existing.is_dir());
            if replace {
                remove_any(&dst).map_err(Error::io("replacing a lower layer's entry", &dst))?;
            }
        }
        if let tar::EntryType::Link = kind
            && let Some(target) = entry.link_name().map_err(io_err)?
        {
            let target_rel = clean_path(&target, layer)?;
            check_parents(root, &target_rel, layer)?;
            let src = root.join(&target_rel);
            if let Some(p) = dst.parent() {
                fs::create_dir_all(p).map_err(Error::io("creating directory", p))?;
            }
            fs::hard_link(&src, &dst).map_err(Error::io("creating hard link", &dst))?;
            seen.insert(rel);
            continue;
        }
        // setuid/setgid bits are useless under no_new_privs and dangerous in a host cache.
        entry.set_mask(0o6000);
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        match entry.unpack_in(root) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::PathEscape { layer: layer.digest.clone(), entry: raw.display().to_string() });
            }
            Err(e) => {
                let cause = std::error::Error::source(&e).map(|c| format!(" ({c})")).unwrap_or_default();
                return Err(Error::image(&layer.path, format!("cannot unpack {}: {e}{cause}", raw.display())));
            }
        }
        seen.insert(rel);
    }
    Ok(())
}
