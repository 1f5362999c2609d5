//! The built image as a docker-archive for container engines (`docker load`, `podman load`,
//! Docker Sandboxes' `sbx template load`), written from the OCI layout `sbx build` produced.
//!
//! The layers are rewritten with the same rules sbx's own unpacker applies, so an image means
//! the same thing on every runtime: setuid/setgid bits are cleared, device nodes and FIFOs are
//! dropped, extended attributes (file capabilities) are not carried over. Everything else —
//! paths, whiteouts, owners, modes, mtimes — is copied as it is. The result is deterministic:
//! the same layout always gives the same image id (`sha256:` of the rewritten config), so the
//! engine runs the image by that content address, never by a mutable tag.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::oci::{self, LayerBlob};

/// The label carrying the OCI manifest digest the image was converted from.
pub const MANIFEST_LABEL: &str = "dev.sbx.manifest";

/// A docker-archive written from an OCI layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineArchive {
    /// The archive file (`docker save` format).
    pub path: PathBuf,
    /// `sha256:…` of the image config: the image id engines report after loading it.
    pub image_id: String,
    /// The tag written into the archive (for people listing images; never used to run it).
    pub repo_tag: String,
    /// The OCI manifest digest it was converted from.
    pub manifest_digest: String,
}

/// The tag sbx gives a converted image: `sbx-image:<first 12 hex of the manifest digest>`.
pub fn repo_tag(manifest_digest: &str) -> String {
    let hex = manifest_digest.split_once(':').map_or(manifest_digest, |(_, h)| h);
    format!("sbx-image:{}", &hex[..hex.len().min(12)])
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn decoder(layer: &LayerBlob) -> Result<Box<dyn Read>> {
    let file = File::open(&layer.path).map_err(Error::io("reading image layer", &layer.path))?;
    let mut buffered = BufReader::new(file);
    let magic = buffered.fill_buf().map_err(Error::io("reading image layer", &layer.path))?.to_vec();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(buffered).map_err(Error::io("starting zstd", &layer.path))?)
    } else {
        Box::new(buffered)
    })
}

/// Rewrites one layer into `out` (an uncompressed tar); returns its `sha256:` diff id.
fn sanitize_layer(layer: &LayerBlob, out: &Path) -> Result<String> {
    let bad = |e: io::Error| Error::image(&layer.path, format!("layer {} is unreadable: {e}", layer.digest));
    let file = File::create(out).map_err(Error::io("writing a converted layer", out))?;
    let writer = HashingWriter { inner: BufWriter::new(file), hash: Sha256::new() };
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    let mut archive = tar::Archive::new(decoder(layer)?);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            continue;
        }
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            continue; // only PAX/GNU bookkeeping entries reach here; the crate already applied them
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let mut header = tar::Header::new_gnu();
        let src = entry.header();
        header.set_entry_type(kind);
        header.set_mode(src.mode().map_err(bad)? & !0o6000);
        header.set_uid(src.uid().map_err(bad)?);
        header.set_gid(src.gid().map_err(bad)?);
        header.set_mtime(src.mtime().map_err(bad)?);
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(bad)?.map(|t| t.into_owned()).unwrap_or_default();
            header.set_size(0);
            builder.append_link(&mut header, &path, &target).map_err(bad)?;
        } else if kind.is_dir() {
            header.set_size(0);
            builder.append_data(&mut header, &path, io::empty()).map_err(bad)?;
        } else {
            header.set_size(entry.size());
            builder.append_data(&mut header, &path, &mut entry).map_err(bad)?;
        }
    }
    let mut writer = builder.into_inner().map_err(bad)?;
    writer.flush().map_err(Error::io("writing a converted layer", out))?;
    Ok(format!("sha256:{}", hex::encode(writer.hash.finalize())))
}

fn read_json(layout: &Path, digest: &str) -> Result<serde_json::Value> {
    let path = oci::blob_path(layout, digest)?;
    let bytes = fs::read(&path).map_err(Error::io("reading image blob", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::image(&path, format!("blob {digest} is not JSON: {e}")))
}

fn append_file(tar: &mut tar::Builder<impl Write>, name: &str, path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(Error::io("reading a converted layer", path))?;
    let len = file.metadata().map_err(Error::io("reading a converted layer", path))?.len();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(len);
    h.set_mtime(0);
    tar.append_data(&mut h, name, &mut file).map_err(Error::io("writing the image archive", path))
}

fn append_bytes(tar: &mut tar::Builder<impl Write>, name: &str, data: &[u8], at: &Path) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data).map_err(Error::io("writing the image archive", at))
}

/// Writes (or finds, from an earlier call) the docker-archive of the image in `layout` under
/// `dir` (`<manifest hex>.tar` plus a `.json` record). The archive is written to a temporary
/// file and renamed, so a killed run never leaves a half archive under the final name.
pub fn write_archive(layout: &Path, dir: &Path) -> Result<EngineArchive> {
    let image = oci::resolve(layout)?;
    let hex = image.manifest_digest.split_once(':').map_or(image.manifest_digest.as_str(), |(_, h)| h).to_string();
    let record = dir.join(format!("{hex}.json"));
    let path = dir.join(format!("{hex}.tar"));
    if let Ok(bytes) = fs::read(&record)
        && let Ok(done) = serde_json::from_slice::<EngineArchive>(&bytes)
        && done.path.is_file()
    {
        return Ok(done);
    }
    fs::create_dir_all(dir).map_err(Error::io("creating the engine image cache", dir))?;
    let work = tempfile::Builder::new()
        .prefix(".tmp-archive-")
        .tempdir_in(dir)
        .map_err(Error::io("creating the engine image cache", dir))?;
    let mut diff_ids = Vec::new();
    let mut layer_files = Vec::new();
    for (i, layer) in image.layers.iter().enumerate() {
        let out = work.path().join(format!("layer-{i}.tar"));
        diff_ids.push(sanitize_layer(layer, &out)?);
        layer_files.push(out);
    }
    let manifest = read_json(layout, &image.manifest_digest)?;
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| Error::image(layout, "the manifest names no config"))?
        .to_string();
    let mut config = read_json(layout, &config_digest)?;
    let obj = config.as_object_mut().ok_or_else(|| Error::image(layout, "the image config is not an object"))?;
    obj.insert("rootfs".into(), serde_json::json!({"type": "layers", "diff_ids": diff_ids}));
    let settings = obj.entry("config").or_insert_with(|| serde_json::json!({}));
    if let Some(settings) = settings.as_object_mut() {
        let labels = settings.entry("Labels").or_insert_with(|| serde_json::json!({}));
        if !labels.is_object() {
            *labels = serde_json::json!({});
        }
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(MANIFEST_LABEL.into(), image.manifest_digest.clone().into());
        }
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::image(layout, format!("config: {e}")))?;
    let config_hex = hex::encode(Sha256::digest(&config_bytes));
    let tag = repo_tag(&image.manifest_digest);
    let layer_names: Vec<String> =
        diff_ids.iter().map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:"))).collect();
    let docker_manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": layer_names,
    }]);
    let tmp_archive = work.path().join("image.tar");
    {
        let file = File::create(&tmp_archive).map_err(Error::io("writing the image archive", &tmp_archive))?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        append_bytes(&mut tar, &format!("{config_hex}.json"), &config_bytes, &tmp_archive)?;
        let mut seen = std::collections::BTreeSet::new();
        for (name, file) in layer_names.iter().zip(&layer_files) {
            if seen.insert(name.clone()) {
                append_file(&mut tar, name, file)?;
            }
        }
        let manifest_bytes = serde_json::to_vec(&docker_manifest).unwrap_or_default();
        append_bytes(&mut tar, "manifest.json", &manifest_bytes, &tmp_archive)?;
        let mut out = tar.into_inner().map_err(Error::io("writing the image archive", &tmp_archive))?;
        out.flush().map_err(Error::io("writing the image archive", &tmp_archive))?;
    }
    fs::rename(&tmp_archive, &path).map_err(Error::io("publishing the image archive", &path))?;
    let done = EngineArchive {
        path,
        image_id: format!("sha256:{config_hex}"),
        repo_tag: tag,
        manifest_digest: image.manifest_digest.clone(),
    };
    let json = serde_json::to_vec_pretty(&done).map_err(|source| Error::Metadata { path: record.clone(), source })?;
    fs::write(&record, json).map_err(Error::io("writing the engine image record", &record))?;
    Ok(done)
}

/// The record of an archive written earlier for `layout`, if any (without writing one).
pub fn existing_archive(layout: &Path, dir: &Path) -> Option<EngineArchive> {
    let image = oci::resolve(layout).ok()?;
    let hex = image.manifest_digest.split_once(':').map_or(image.manifest_digest.as_str(), |(_, h)| h).to_string();
    let bytes = fs::read(dir.join(format!("{hex}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}
