//! pipx tools: a venv on the locked Python with the locked wheels unpacked, laid out the way
//! `uv tool install` does for mise (`UV_TOOL_DIR=<install>`, `UV_TOOL_BIN_DIR=<install>/bin`):
//! the venv at `<install>/<name>/`, console scripts in its `bin/`, and symlinks to them in
//! `<install>/bin/`. No build step or install hook runs: wheels are unpacked (the
//! `*.data/{purelib,platlib,scripts,data}` directories moved where installers put them) and
//! entry-point scripts are generated. The venv embeds absolute image paths (`pyvenv.cfg`,
//! shebangs), as every venv does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sbx_mise::lockfile::model::LockedPackage;

use crate::error::{ImageError, IoContext, Result};
use crate::extract::{ArchiveKind, Strip, extract};

/// Where the venv's interpreter comes from.
#[derive(Clone, Debug)]
pub struct PythonRuntime {
    /// Absolute image path of the Python install dir (`…/installs/python/3.12.7`).
    pub install_dir: String,
    /// Its full version (`3.12.7`).
    pub version: String,
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// Installs the wheels (`(package, archive path)`) of the tool `name` into `dest`, which is
/// the install dir as seen inside the image at `image_dest`.
pub fn install_pipx(
    name: &str,
    wheels: &[(LockedPackage, PathBuf)],
    runtime: &PythonRuntime,
    dest: &Path,
    image_dest: &str,
) -> Result<()> {
    let minor = runtime.version.split('.').take(2).collect::<Vec<_>>().join(".");
    let venv = dest.join(name);
    let image_venv = format!("{}/{name}", image_dest.trim_end_matches('/'));
    let site = venv.join(format!("lib/python{minor}/site-packages"));
    let bin = venv.join("bin");
    std::fs::create_dir_all(&site).at(&site)?;
    std::fs::create_dir_all(&bin).at(&bin)?;
    let python = format!("{}/bin/python{minor}", runtime.install_dir.trim_end_matches('/'));
    std::os::unix::fs::symlink(&python, bin.join("python")).at(&bin)?;
    std::os::unix::fs::symlink("python", bin.join("python3")).at(&bin)?;
    std::os::unix::fs::symlink("python", bin.join(format!("python{minor}"))).at(&bin)?;
    let cfg = format!(
        "home = {}/bin\nimplementation = CPython\nversion_info = {}\ninclude-system-site-packages = false\n",
        runtime.install_dir.trim_end_matches('/'),
        runtime.version
    );
    std::fs::write(venv.join("pyvenv.cfg"), cfg).at(&venv)?;
    let shebang = format!("#!{image_venv}/bin/python\n");
    for (_, archive) in wheels {
        extract(archive, ArchiveKind::Zip, &site, Strip::None, "")?;
        place_data_dirs(&site, &venv, &bin, &shebang)?;
    }
    // Console scripts of the tool's own distribution.
    let top_bin = dest.join("bin");
    std::fs::create_dir_all(&top_bin).at(&top_bin)?;
    for entry in std::fs::read_dir(&site).at(&site)? {
        let dir = entry.at(&site)?.path();
        let file = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let dist = file.split('-').next().unwrap_or_default();
        if !(file.ends_with(".dist-info") && normalize(dist) == normalize(name)) {
            continue;
        }
        let eps = dir.join("entry_points.txt");
        let Ok(text) = std::fs::read_to_string(&eps) else { continue };
        for (script, module, attr) in console_scripts(&text) {
            let path = bin.join(&script);
            let body = format!(
                "{shebang}# -*- coding: utf-8 -*-\nimport sys\nfrom {module} import {head}\nif __name__ == \"__main__\":\n    if sys.argv[0].endswith(\"-script.pyw\"):\n        sys.argv[0] = sys.argv[0][:-11]\n    elif sys.argv[0].endswith(\".exe\"):\n        sys.argv[0] = sys.argv[0][:-4]\n    sys.exit({attr}())\n",
                head = attr.split('.').next().unwrap_or(&attr)
            );
            std::fs::write(&path, body).at(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).at(&path)?;
            let link = top_bin.join(&script);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../{name}/bin/{script}"), &link).at(&link)?;
        }
    }
    Ok(())
}

/// Moves `<dist>.data/*` out of site-packages the way wheel installers do.
fn place_data_dirs(site: &Path, venv: &Path, bin: &Path, shebang: &str) -> Result<()> {
    for entry in std::fs::read_dir(site).at(site)? {
        let data = entry.at(site)?.path();
        if !data.to_string_lossy().ends_with(".data") || !data.is_dir() {
            continue;
        }
        for sub in std::fs::read_dir(&data).at(&data)? {
            let sub = sub.at(&data)?.path();
            let kind = sub.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let target = match kind.as_str() {
                "purelib" | "platlib" => site.to_path_buf(),
                "scripts" => bin.to_path_buf(),
                "data" => venv.to_path_buf(),
                _ => continue,
            };
            for item in std::fs::read_dir(&sub).at(&sub)? {
                let item = item.at(&sub)?.path();
                let Some(file) = item.file_name() else { continue };
                let to = target.join(file);
                if kind == "scripts" && item.is_file() {
                    let text = std::fs::read(&item).at(&item)?;
                    let fixed = match text.strip_prefix(b"#!python") {
                        Some(rest) => {
                            let rest = rest.splitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
                            [shebang.as_bytes(), rest].concat()
                        }
                        None => text,
                    };
                    std::fs::write(&to, fixed).at(&to)?;
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).at(&to)?;
                } else if std::fs::rename(&item, &to).is_err() {
                    return Err(ImageError::Archive {
                        archive: item.clone(),
                        message: format!("cannot move wheel data to {}", to.display()),
                    });
                }
            }
        }
        std::fs::remove_dir_all(&data).at(&data)?;
    }
    Ok(())
}

/// `[console_scripts]` and `[gui_scripts]` entries: (script name, module, attribute).
fn console_scripts(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[console_scripts]" || line == "[gui_scripts]";
            continue;
        }
        if !in_section || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, target)) = line.split_once('=') else { continue };
        let target = target.split('[').next().unwrap_or_default().trim();
        let Some((module, attr)) = target.split_once(':') else { continue };
        let name = name.trim();
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !name.is_empty() && !name.contains('/') && valid(module.trim()) && valid(attr.trim()) {
            out.push((name.to_string(), module.trim().to_string(), attr.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points() {
        let eps = "[console_scripts]\nblack = black:patched_main\nblackd = blackd:patched_main [d]\nbad/x = a:b\n\n[other]\nx = y:z\n";
        assert_eq!(
            console_scripts(eps),
            vec![
                ("black".into(), "black".into(), "patched_main".into()),
                ("blackd".into(), "blackd".into(), "patched_main".into())
            ]
        );
        assert_eq!(normalize("Foo.Bar-baz"), "foo_bar_baz");
    }
}
