//! Host ↔ image parity: the host's mise installs of the locked tools, hashed from disk, against
//! the image's tool layers, entry by entry.
//!
//! Per tool: identical, equivalent (every difference is explained, see below), differs, missing
//! on the host, or not in the image. Every differing entry is listed with its reasons
//! (content, exec bit, symlink target, type, only on one side). Two kinds of differences are
//! explained rather than failed, and always listed:
//!
//! * files that embed the install path (venv scripts, `pyvenv.cfg`, a venv's `python`
//!   symlink): equal once the host's mise data dir is replaced by the image's;
//! * mise's own `bin/npm` wrapper, which mise writes into every core:node install (it runs
//!   `mise reshim` after global installs) and which is not part of node's archive.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sbx_mise::Platform;
use sbx_mise::lockfile::model::Lockfile;
use serde::Serialize;

use super::LayerCheck;
use super::layer::read_files;
use crate::error::Result;
use crate::install::{backend_of, tool_dir_name};
use crate::treehash::{TreeRecord, tree_records};

/// Files larger than this are not read back for the install-path comparison.
const READ_LIMIT: u64 = 8 << 20;

/// Why one entry differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileReason {
    /// Different bytes.
    Content,
    /// One side executable, the other not.
    ExecBit,
    /// Symlinks with different targets.
    SymlinkTarget,
    /// A file on one side, a directory or symlink on the other.
    Type,
    /// Only in the image.
    OnlyInImage,
    /// Only on the host.
    OnlyOnHost,
    /// Equal once the host's mise data dir is replaced by the image's (explained).
    EmbedsInstallPath,
    /// mise's `bin/npm` wrapper in a core:node install (explained).
    MiseNpmWrapper,
}

impl FileReason {
    /// Whether the difference is expected and does not fail verification.
    pub fn explained(self) -> bool {
        matches!(self, Self::EmbedsInstallPath | Self::MiseNpmWrapper)
    }
}

/// One differing entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// Path relative to the install directory.
    pub path: String,
    /// Why it differs.
    pub reasons: Vec<FileReason>,
    /// Detail (`exec on host, not in image`, `host → a, image → b`).
    pub detail: String,
}

/// How a tool compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    /// Differs in at least one unexplained entry.
    Differs,
    /// Not installed on the host.
    MissingOnHost,
    /// The image has no layer for it on the host's platform.
    NotInImage,
    /// Differs only in explained entries.
    Equivalent,
    /// Entry for entry the same.
    Identical,
}

/// One locked tool version on the host.
#[derive(Clone, Debug, Serialize)]
pub struct HostTool {
    /// Tool name.
    pub tool: String,
    /// Version.
    pub version: String,
    /// The host install directory looked at.
    pub host_dir: PathBuf,
    /// The install directory in the image.
    pub image_dir: String,
    /// The verdict.
    pub status: HostStatus,
    /// Every differing entry, sorted by path.
    pub files: Vec<FileDiff>,
    /// What else was found, e.g. the same version installed under another directory name
    /// (mise's npm installer uses `<version>~aube~<hash>`).
    pub note: Option<String>,
}

/// The result of [`verify_host`].
#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    /// The host's mise data dir.
    pub data_dir: PathBuf,
    /// The platform compared.
    pub platform: Platform,
    /// One entry per locked tool version, unmatched ones first.
    pub tools: Vec<HostTool>,
}

impl HostReport {
    /// Whether every tool is identical or equivalent.
    pub fn ok(&self) -> bool {
        self.tools.iter().all(|t| matches!(t.status, HostStatus::Identical | HostStatus::Equivalent))
    }
}

/// The host's mise data dir: `MISE_DATA_DIR`, else `$XDG_DATA_HOME/mise`, else
/// `~/.local/share/mise`, from the given environment.
pub fn host_data_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let set = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("MISE_DATA_DIR")
        .or_else(|| set("XDG_DATA_HOME").map(|d| d.join("mise")))
        .or_else(|| set("HOME").map(|h| h.join(".local/share/mise")))
}

/// Compares the host's installs below `data_dir` with `layers` (the tool layers of the image
/// for `platform`, as [`super::verify_image`] checked them).
pub fn verify_host(lock: &Lockfile, layers: &[LayerCheck], platform: Platform, data_dir: &Path) -> Result<HostReport> {
    let mut tools = Vec::new();
    for (tool, versions) in &lock.tools {
        for locked in versions {
            let backend = backend_of(tool, locked)?;
            let host_dir = data_dir.join("installs").join(tool_dir_name(tool, &backend)).join(&locked.version);
            let layer =
                layers.iter().find(|l| l.platform == platform && l.tool == *tool && l.version == locked.version);
            let mut entry = HostTool {
                tool: tool.clone(),
                version: locked.version.clone(),
                host_dir: host_dir.clone(),
                image_dir: layer.map(|l| l.install_dir.clone()).unwrap_or_default(),
                status: HostStatus::Identical,
                files: Vec::new(),
                note: None,
            };
            match (layer, layer.and_then(|l| l.scan.as_ref())) {
                (Some(layer), Some(scan)) if host_dir.is_dir() => {
                    let host = tree_records(&host_dir)?.entries().to_vec();
                    let paths = Paths { host_data: data_dir, image_dir: &layer.install_dir };
                    entry.files = compare(&host, &scan.entries, &host_dir, layer, &locked.backend, &paths)?;
                    entry.status = if entry.files.is_empty() {
                        HostStatus::Identical
                    } else if entry.files.iter().all(|f| f.reasons.iter().all(|r| r.explained())) {
                        HostStatus::Equivalent
                    } else {
                        HostStatus::Differs
                    };
                }
                (Some(_), Some(_)) => {
                    entry.status = HostStatus::MissingOnHost;
                    entry.note = elsewhere(&host_dir, &locked.version);
                }
                _ => entry.status = HostStatus::NotInImage,
            }
            tools.push(entry);
        }
    }
    tools.sort_by(|a, b| (a.status, &a.tool, &a.version).cmp(&(b.status, &b.tool, &b.version)));
    Ok(HostReport { data_dir: data_dir.to_path_buf(), platform, tools })
}

/// Directories next to `host_dir` that hold the same version under another name.
fn elsewhere(host_dir: &Path, version: &str) -> Option<String> {
    let parent = host_dir.parent()?;
    let prefix = format!("{version}~");
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    (!names.is_empty()).then(|| {
        format!(
            "mise installed this version as {} in a layout sbx's image does not use; not compared",
            names.join(", ")
        )
    })
}

struct Paths<'a> {
    host_data: &'a Path,
    image_dir: &'a str,
}

impl Paths<'_> {
    /// (host data dir spellings, image data dir): the image's data dir is the part of the
    /// install dir before `/installs/`.
    fn substitution(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        let image_data = self.image_dir.rsplit_once("/installs/").map_or(self.image_dir, |(d, _)| d);
        let mut host = vec![self.host_data.as_os_str().as_bytes().to_vec()];
        if let Ok(canon) = self.host_data.canonicalize() {
            host.push(canon.as_os_str().as_bytes().to_vec());
        }
        host.iter_mut().for_each(|h| {
            while h.len() > 1 && h.ends_with(b"/") {
                h.pop();
            }
        });
        host.sort_by_key(|h| std::cmp::Reverse(h.len()));
        host.dedup();
        (host, image_data.as_bytes().to_vec())
    }

    fn relocate(&self, bytes: &[u8]) -> Vec<u8> {
        let (hosts, image) = self.substitution();
        let mut out = bytes.to_vec();
        for h in hosts.iter().filter(|h| !h.is_empty() && h.as_slice() != b"/") {
            out = replace_all(&out, h, &image);
        }
        out
    }
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn describe(r: &TreeRecord) -> &'static str {
    match r {
        TreeRecord::Dir => "directory",
        TreeRecord::File { .. } => "file",
        TreeRecord::Symlink(_) => "symlink",
    }
}

const NPM_WRAPPER_MARK: &[u8] = b"This script wraps npm so to run `mise reshim`";

fn compare(
    host: &[(Vec<u8>, TreeRecord)],
    image: &[(Vec<u8>, TreeRecord)],
    host_dir: &Path,
    layer: &LayerCheck,
    backend: &str,
    paths: &Paths<'_>,
) -> Result<Vec<FileDiff>> {
    let h: BTreeMap<&[u8], &TreeRecord> = host.iter().map(|(p, r)| (p.as_slice(), r)).collect();
    let i: BTreeMap<&[u8], &TreeRecord> = image.iter().map(|(p, r)| (p.as_slice(), r)).collect();
    let all: BTreeSet<&[u8]> = h.keys().chain(i.keys()).copied().collect();
    let mut out = Vec::new();
    let mut content_check: BTreeSet<Vec<u8>> = BTreeSet::new();
    let host_file = |p: &[u8]| host_dir.join(std::ffi::OsStr::from_bytes(p));
    for path in all {
        let name = String::from_utf8_lossy(path).into_owned();
        let npm_wrapper = backend == "core:node"
            && path == b"bin/npm"
            && h.get(path).is_some_and(|r| matches!(r, TreeRecord::File { .. }))
            && std::fs::read(host_file(path))
                .is_ok_and(|b| b.windows(NPM_WRAPPER_MARK.len()).any(|w| w == NPM_WRAPPER_MARK));
        let (reasons, detail) = match (h.get(path), i.get(path)) {
            (Some(_), _) if npm_wrapper => (
                vec![FileReason::MiseNpmWrapper],
                "mise writes this wrapper at install; the image keeps node's own".into(),
            ),
            (Some(_), None) => (vec![FileReason::OnlyOnHost], String::new()),
            (None, Some(_)) => (vec![FileReason::OnlyInImage], String::new()),
            (Some(a), Some(b)) if a == b => continue,
            (Some(TreeRecord::File { exec: he, sha256: hs }), Some(TreeRecord::File { exec: ie, sha256: is })) => {
                let mut reasons = Vec::new();
                let mut detail = Vec::new();
                if hs != is {
                    reasons.push(FileReason::Content);
                    detail.push(format!(
                        "sha256 host {}…, image {}…",
                        &hs[..hs.len().min(12)],
                        &is[..is.len().min(12)]
                    ));
                    content_check.insert(path.to_vec());
                }
                if he != ie {
                    reasons.push(FileReason::ExecBit);
                    let x = |b: &bool| if *b { "executable" } else { "not executable" };
                    detail.push(format!("{} on host, {} in image", x(he), x(ie)));
                }
                (reasons, detail.join("; "))
            }
            (Some(TreeRecord::Symlink(ht)), Some(TreeRecord::Symlink(it))) => {
                let relocated = paths.relocate(ht);
                let reason = if relocated == *it { FileReason::EmbedsInstallPath } else { FileReason::SymlinkTarget };
                let detail = format!("host → {}, image → {}", String::from_utf8_lossy(ht), String::from_utf8_lossy(it));
                (vec![reason], detail)
            }
            (Some(a), Some(b)) => {
                (vec![FileReason::Type], format!("{} on host, {} in image", describe(a), describe(b)))
            }
            (None, None) => continue,
        };
        out.push(FileDiff { path: name, reasons, detail });
    }
    if !content_check.is_empty() {
        let image_bytes =
            read_files(&layer_path(layer)?, &layer.media_type, &layer.install_dir, &content_check, READ_LIMIT)?;
        for diff in out.iter_mut().filter(|d| d.reasons.contains(&FileReason::Content)) {
            let key = diff.path.as_bytes().to_vec();
            let (Some(ib), Ok(hb)) = (image_bytes.get(&key), std::fs::read(host_file(&key))) else { continue };
            if paths.relocate(&hb) == *ib {
                diff.reasons.retain(|r| *r != FileReason::Content);
                diff.reasons.insert(0, FileReason::EmbedsInstallPath);
                diff.detail = format!("equal once {} reads {}", paths.host_data.display(), {
                    let (_, image) = paths.substitution();
                    String::from_utf8_lossy(&image).into_owned()
                });
            }
        }
    }
    Ok(out)
}

fn layer_path(layer: &LayerCheck) -> Result<PathBuf> {
    layer.blob_path.clone().ok_or_else(|| crate::error::ImageError::Io {
        path: PathBuf::from(&layer.digest),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "layer blob path unknown"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{LayerOptions, LayerTree, write_layer};
    use crate::verify::layer::scan_layer;
    use std::os::unix::fs::PermissionsExt;

    const IMAGE_DIR: &str = "/home/sbx/.local/share/mise/installs/pipx-black/24.10.0";

    /// A venv-like install: a script and pyvenv.cfg naming `data`, a python symlink into it.
    fn venv(dir: &Path, data: &str, exec: u32) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            dir.join("bin/black"),
            format!("#!{data}/installs/pipx-black/24.10.0/bin/python\nimport black\n"),
        )
        .unwrap();
        std::fs::set_permissions(dir.join("bin/black"), std::fs::Permissions::from_mode(exec)).unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), format!("home = {data}/installs/python/3.12.7/bin\n")).unwrap();
        std::os::unix::fs::symlink(format!("{data}/installs/python/3.12.7/bin/python3"), dir.join("bin/python"))
            .unwrap();
        std::fs::write(dir.join("data.txt"), "same\n").unwrap();
    }

    fn layer_check(image_tree: &Path, blobs: &Path) -> LayerCheck {
        let mut tree = LayerTree::new();
        tree.add_tree(IMAGE_DIR, image_tree).unwrap();
        let blob = write_layer(&tree, &LayerOptions::default(), blobs, Some(IMAGE_DIR)).unwrap();
        let path = blobs.join(blob.digest.trim_start_matches("sha256:"));
        LayerCheck {
            platform: Platform::LINUX_AMD64,
            tool: "pipx:black".into(),
            version: "24.10.0".into(),
            backend: "pipx:black".into(),
            digest: blob.digest.clone(),
            install_dir: IMAGE_DIR.into(),
            tree_hash: blob.tree_hash.clone(),
            computed_tree_hash: blob.tree_hash.clone(),
            ok: true,
            scan: Some(scan_layer(&path, &blob.media_type, IMAGE_DIR).unwrap()),
            media_type: blob.media_type,
            blob_path: Some(path),
        }
    }

    #[test]
    fn install_paths_are_explained_and_real_differences_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let image_tree = tmp.path().join("image");
        venv(&image_tree, "/home/sbx/.local/share/mise", 0o755);
        let layer = layer_check(&image_tree, &tmp.path().join("blobs"));
        let data = tmp.path().join("host data");
        let host = data.join("installs/pipx-black/24.10.0");
        venv(&host, &data.display().to_string(), 0o755);
        let lock: Lockfile = toml_lock();
        let report = verify_host(&lock, std::slice::from_ref(&layer), Platform::LINUX_AMD64, &data).unwrap();
        let tool = &report.tools[0];
        assert_eq!(tool.status, HostStatus::Equivalent, "{tool:#?}");
        let paths: Vec<(&str, &[FileReason])> = tool.files.iter().map(|f| (f.path.as_str(), &f.reasons[..])).collect();
        assert_eq!(
            paths,
            [
                ("bin/black", &[FileReason::EmbedsInstallPath][..]),
                ("bin/python", &[FileReason::EmbedsInstallPath][..]),
                ("pyvenv.cfg", &[FileReason::EmbedsInstallPath][..]),
            ]
        );
        assert!(report.ok());

        // A real change next to the path: content and exec bit are reported, and fail.
        std::fs::write(host.join("pyvenv.cfg"), format!("home = {}/installs/python/3.12.8/bin\n", data.display()))
            .unwrap();
        std::fs::set_permissions(host.join("data.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(host.join("extra"), "x").unwrap();
        let report = verify_host(&lock, std::slice::from_ref(&layer), Platform::LINUX_AMD64, &data).unwrap();
        let tool = &report.tools[0];
        assert_eq!(tool.status, HostStatus::Differs);
        let find = |p: &str| tool.files.iter().find(|f| f.path == p).unwrap().reasons.clone();
        assert_eq!(find("pyvenv.cfg"), [FileReason::Content]);
        assert_eq!(find("data.txt"), [FileReason::ExecBit]);
        assert_eq!(find("extra"), [FileReason::OnlyOnHost]);
        assert!(!report.ok());

        // The same version under mise's npm installer's directory name is named, not compared.
        std::fs::remove_dir_all(&host).unwrap();
        std::fs::create_dir_all(data.join("installs/pipx-black/24.10.0~aube~3d34")).unwrap();
        let report = verify_host(&lock, std::slice::from_ref(&layer), Platform::LINUX_AMD64, &data).unwrap();
        assert_eq!(report.tools[0].status, HostStatus::MissingOnHost);
        assert!(report.tools[0].note.as_deref().is_some_and(|n| n.contains("24.10.0~aube~3d34")), "{report:#?}");
    }

    fn toml_lock() -> Lockfile {
        let tool = sbx_mise::lockfile::model::LockedTool {
            backend: "pipx:black".into(),
            request: "24".into(),
            version: "24.10.0".into(),
            runtime: Some("python@3.12.7".into()),
            options: BTreeMap::new(),
            platforms: BTreeMap::new(),
            packages: Vec::new(),
        };
        Lockfile { tools: BTreeMap::from([("pipx:black".to_string(), vec![tool])]), ..Lockfile::default() }
    }
}
