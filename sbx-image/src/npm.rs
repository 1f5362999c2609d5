//! npm tools: the locked closure laid out the way `npm install -g --prefix <install>` does,
//! without running any lifecycle script.
//!
//! Each package's tarball is unpacked (first path component stripped) at
//! `<install>/lib/<location>` (`location` as in package-lock v3, e.g.
//! `node_modules/a/node_modules/b`). The tool's own `bin` entries become symlinks in
//! `<install>/bin/` (`../lib/node_modules/<tool>/<file>`); the bins of nested packages are
//! linked into the `.bin` directory of the `node_modules` that holds them. Bin targets are
//! made executable, as npm's bin-links does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use sbx_mise::lockfile::model::LockedPackage;

use crate::error::{ImageError, IoContext, Result};
use crate::extract::{ArchiveKind, Strip, extract};

/// Installs `packages` (already downloaded: `(package, archive path)`) into `dest`.
/// `root_name` is the tool's npm package name.
pub fn install_npm(root_name: &str, packages: &[(LockedPackage, PathBuf)], dest: &Path) -> Result<()> {
    let lib = dest.join("lib");
    for (pkg, archive) in packages {
        let location = pkg.location.as_deref().unwrap_or_default();
        let rel = safe_relative(location).ok_or_else(|| ImageError::UnsafeEntry {
            archive: archive.clone(),
            entry: location.to_string(),
            reason: "is not a relative node_modules location".into(),
        })?;
        extract(archive, ArchiveKind::TarGz, &lib.join(rel), Strip::One, "")?;
    }
    crate::npm_native::place_native_binary(root_name, &lib)?;
    for (pkg, _) in packages {
        let location = pkg.location.as_deref().unwrap_or_default();
        let pkg_dir = lib.join(location);
        let bins = read_bins(&pkg_dir)?;
        if bins.is_empty() {
            continue;
        }
        let is_root = location == format!("node_modules/{root_name}");
        let (bin_dir, prefix) = if is_root {
            (dest.join("bin"), format!("../lib/{location}"))
        } else {
            // `x/node_modules/pkg` → `x/node_modules/.bin`, linking to `../pkg/<file>`.
            let Some((parent, folder)) = location
                .rsplit_once("/node_modules/")
                .or_else(|| location.strip_prefix("node_modules/").map(|f| ("", f)))
            else {
                continue;
            };
            let nm = if parent.is_empty() { lib.join("node_modules") } else { lib.join(parent).join("node_modules") };
            (nm.join(".bin"), format!("../{folder}"))
        };
        for (name, file) in bins {
            let Some(file_rel) = safe_relative(&file) else { continue };
            let target = pkg_dir.join(&file_rel);
            if !target.is_file() {
                continue;
            }
            let mode = std::fs::metadata(&target).at(&target)?.permissions().mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o755)).at(&target)?;
            std::fs::create_dir_all(&bin_dir).at(&bin_dir)?;
            let link = bin_dir.join(&name);
            let _ = std::fs::remove_file(&link);
            let rel_target = format!("{prefix}/{}", file_rel.display());
            std::os::unix::fs::symlink(&rel_target, &link).at(&link)?;
        }
    }
    Ok(())
}

/// A path made only of normal components.
fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p.trim_start_matches("./"));
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then(|| path.components().filter(|c| matches!(c, Component::Normal(_))).collect())
}

/// The `bin` entries of the package in `dir`: (link name, file relative to the package).
fn read_bins(dir: &Path) -> Result<Vec<(String, String)>> {
    let manifest = dir.join("package.json");
    let Ok(bytes) = std::fs::read(&manifest) else { return Ok(Vec::new()) };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json { path: manifest.clone(), source })?;
    let name = json.get("name").and_then(|n| n.as_str()).unwrap_or_default();
    let mut bins = Vec::new();
    match json.get("bin") {
        Some(serde_json::Value::String(file)) => {
            let short = name.rsplit('/').next().unwrap_or(name);
            bins.push((short.to_string(), file.clone()));
        }
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                if let Some(file) = v.as_str() {
                    let short = k.rsplit('/').next().unwrap_or(k);
                    bins.push((short.to_string(), file.to_string()));
                }
            }
        }
        _ => {}
    }
    bins.retain(|(n, _)| !n.is_empty() && n != "." && n != ".." && !n.contains('/'));
    bins.sort();
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_must_be_relative() {
        assert_eq!(safe_relative("node_modules/a").unwrap(), Path::new("node_modules/a"));
        assert!(safe_relative("../x").is_none());
        assert!(safe_relative("/x").is_none());
        assert!(safe_relative("").is_none());
    }
}
