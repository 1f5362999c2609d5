//! mise's install layout inside the image.
//!
//! Tools live at `<data_dir>/installs/<tool-dir>/<version>/` (the default data dir is
//! [`DEFAULT_DATA_DIR`]). Next to the versions mise keeps the fuzzy-version symlinks it creates
//! (`22` → `./22.11.0`, `22.11` → `./22.11.0`, `latest` → `./22.11.0`; the highest version
//! wins), `<tool-dir>/.mise.backend.toml`, and `installs/.mise-installs.toml`, the consolidated
//! manifest (`short`, `full`, `explicit_backend`, `opts` per tool dir) — the files mise's
//! install state reads, so `mise ls` inside the image sees every tool as installed.

use std::collections::BTreeMap;
use std::path::Path;

use sbx_mise::BackendRef;
use sbx_mise::lockfile::model::LockedTool;

use crate::error::{ImageError, Result};
use crate::extract::{ArchiveKind, Strip, add_archive};
use crate::layer::LayerTree;

/// The image's mise data dir unless configured (`[image] data_dir`): outside any home
/// directory, so a home mounted by the sandbox never hides the toolchain.
pub const DEFAULT_DATA_DIR: &str = "/opt/sbx/mise";

/// The mise config `sbx build` writes to `/etc/mise/config.toml`: every locked tool at its
/// exact versions (in lock order, the first one wins on PATH), so `mise` in the image uses
/// the locked toolchain from any directory.
pub fn mise_config(lock_tools: &BTreeMap<String, Vec<LockedTool>>) -> String {
    let mut out = String::from("# Written by sbx build from sbx.lock: the locked toolchain.\n[tools]\n");
    for (tool, versions) in lock_tools {
        let v: Vec<String> = versions.iter().map(|v| toml_str(&v.version)).collect();
        let value = if v.len() == 1 { v[0].clone() } else { format!("[{}]", v.join(", ")) };
        out.push_str(&format!("{} = {value}\n", toml_key(tool)));
    }
    out
}

/// Paths of mise's layout below one data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiseLayout {
    /// Absolute data dir inside the image (`MISE_DATA_DIR`).
    pub data_dir: String,
}

impl Default for MiseLayout {
    fn default() -> Self {
        Self { data_dir: DEFAULT_DATA_DIR.to_string() }
    }
}

/// The backend behind a lockfile entry, parsed.
pub fn backend_of(tool: &str, locked: &LockedTool) -> Result<BackendRef> {
    match BackendRef::parse(&locked.backend) {
        Ok(Some(b)) => Ok(b),
        _ => Err(ImageError::Unsupported {
            what: format!("backend `{}` of tool `{tool}`", locked.backend),
            help: "run `sbx lock` again; sbx.lock must name a `backend:name` for every tool".into(),
        }),
    }
}

/// The directory name under `installs/` mise uses for the tool keyed `tool` in `[tools]`:
/// a short name as is, a full `backend:name` kebab-cased (`npm-prettier`).
pub fn tool_dir_name(tool: &str, backend: &BackendRef) -> String {
    if tool.contains(':') { backend.install_dir_name() } else { tool.to_string() }
}

impl MiseLayout {
    /// `installs/` as an image path relative to `/`.
    pub fn installs(&self) -> String {
        format!("{}/installs", self.data_dir.trim_matches('/'))
    }

    /// `installs/<tool-dir>/<version>` relative to `/`.
    pub fn install_dir(&self, tool_dir: &str, version: &str) -> String {
        format!("{}/{tool_dir}/{version}", self.installs())
    }

    /// Adds the mise metadata and fuzzy-version symlinks for every locked tool to `tree`.
    pub fn add_metadata(&self, lock_tools: &BTreeMap<String, Vec<LockedTool>>, tree: &mut LayerTree) -> Result<()> {
        let installs = self.installs();
        let mut manifest = String::new();
        for (tool, versions) in lock_tools {
            let Some(first) = versions.first() else { continue };
            let backend = backend_of(tool, first)?;
            let dir = tool_dir_name(tool, &backend);
            let mut full = backend.clone();
            full.options.clear();
            let mut entry = format!(
                "short = {}\nfull = {}\nexplicit_backend = {}\n",
                toml_str(tool),
                toml_str(&full.to_string()),
                tool.contains(':')
            );
            let opts: BTreeMap<&String, &String> = backend.options.iter().chain(first.options.iter()).collect();
            let mut opts_text = String::new();
            for (k, v) in &opts {
                opts_text.push_str(&format!("{} = {}\n", toml_key(k), toml_str(v)));
            }
            if !opts.is_empty() {
                entry.push_str(&format!("\n[opts]\n{opts_text}"));
            }
            tree.add_bytes(
                &format!("{installs}/{dir}/.mise.backend.toml"),
                entry.trim_end().as_bytes().to_vec(),
                false,
            );
            manifest.push_str(&format!(
                "[{}]\nshort = {}\nfull = {}\nexplicit_backend = {}\n",
                toml_key(&dir),
                toml_str(tool),
                toml_str(&full.to_string()),
                tool.contains(':')
            ));
            if !opts.is_empty() {
                manifest.push_str(&format!("\n[{}.opts]\n{opts_text}", toml_key(&dir)));
            }
            manifest.push('\n');
            let names: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
            for (link, target) in runtime_symlinks(&names) {
                tree.add_symlink(&format!("{installs}/{dir}/{link}"), &format!("./{target}"));
            }
        }
        tree.add_bytes(&format!("{installs}/.mise-installs.toml"), manifest.trim_end().as_bytes().to_vec(), false);
        Ok(())
    }
}

/// The fuzzy-version symlinks mise creates for these installed versions: link name → version.
pub fn runtime_symlinks(versions: &[&str]) -> BTreeMap<String, String> {
    let mut sorted: Vec<&str> = versions.iter().copied().filter(|v| !is_prerelease(v)).collect();
    sorted.sort_by_key(|v| version_key(v));
    let mut links = BTreeMap::new();
    for v in sorted {
        let prefix_len =
            v.find('-').filter(|&i| i > 0 && v[..i].chars().all(|c| c.is_ascii_alphanumeric())).map_or(0, |i| i + 1);
        let (prefix, rest) = v.split_at(prefix_len);
        let parts: Vec<&str> = rest.split('.').collect();
        for n in 1..parts.len() {
            links.insert(format!("{prefix}{}", parts[..n].join(".")), v.to_string());
        }
        links.insert(format!("{prefix}latest"), v.to_string());
    }
    links.retain(|link, target| link != target);
    links
}

fn is_prerelease(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    ["-src", "-dev", "-latest", "-stm", "rc", "-milestone", "alpha", "beta", "pre", "-next", "snapshot", "master"]
        .iter()
        .any(|p| l.contains(p))
}

fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '+']).map(|p| (p.parse::<u64>().unwrap_or(0), p.to_string())).collect()
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// Adds one single-artifact tool (already downloaded to `archive`) to `tree` at the image path
/// `install_rel`, the way mise lays it out: core tools' archives lose their top-level
/// directory, other archives lose it when it is the only one, single binaries go to
/// `bin/<exe>`. Nothing is unpacked to disk except a compressed tar, decompressed once into an
/// unnamed file in `scratch` (see [`add_archive`]).
pub fn add_artifact(
    tree: &mut LayerTree,
    install_rel: &str,
    (tool, locked): (&str, &LockedTool),
    url: &str,
    archive: &Path,
    scratch: &Path,
) -> Result<()> {
    let backend = backend_of(tool, locked)?;
    if !locked.packages.is_empty() {
        return Err(ImageError::Unsupported {
            what: format!("installing the package closure of `{tool}` ({})", locked.backend),
            help: "npm and pipx tools are laid out from their closure; run `sbx lock` again".into(),
        });
    }
    let kind = ArchiveKind::from_name(url);
    let strip = if backend.kind == sbx_mise::BackendKind::Core { Strip::One } else { Strip::Auto };
    let exe = locked
        .options
        .get("exe")
        .or_else(|| backend.options.get("exe"))
        .cloned()
        .unwrap_or_else(|| backend.name.rsplit('/').next().unwrap_or(tool).to_string());
    add_archive(tree, install_rel, archive, kind, strip, &exe, scratch)
}

/// The directory (relative to the install dir `install_rel` in `tree`) to put on PATH: `bin`
/// when it exists.
pub fn bin_subdir(tree: &LayerTree, install_rel: &str) -> &'static str {
    if tree.is_dir(&format!("{}/bin", install_rel.trim_end_matches('/'))) { "bin" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_links_like_mise() {
        let links = runtime_symlinks(&["22.11.0", "20.18.1", "22.12.0", "23.0.0-rc.1"]);
        assert_eq!(links["22"], "22.12.0");
        assert_eq!(links["22.11"], "22.11.0");
        assert_eq!(links["20"], "20.18.1");
        assert_eq!(links["latest"], "22.12.0");
        assert!(!links.contains_key("23"));
        let j = runtime_symlinks(&["temurin-17.0.2"]);
        assert_eq!(j["temurin-17"], "temurin-17.0.2");
        assert_eq!(j["temurin-latest"], "temurin-17.0.2");
        assert_eq!(runtime_symlinks(&["1.7"]).keys().collect::<Vec<_>>(), ["1", "latest"]);
    }

    #[test]
    fn metadata_files() {
        let locked = LockedTool {
            backend: "ubi:cli/cli[exe=gh]".into(),
            request: "2".into(),
            version: "2.60.0".into(),
            runtime: None,
            options: BTreeMap::new(),
            platforms: BTreeMap::new(),
            packages: vec![],
        };
        let mut node = locked.clone();
        node.backend = "core:node".into();
        let tools = BTreeMap::from([("gh".to_string(), vec![locked]), ("node".to_string(), vec![node])]);
        let mut tree = LayerTree::new();
        MiseLayout::default().add_metadata(&tools, &mut tree).unwrap();
        let installs = "opt/sbx/mise/installs";
        let get = |p: &str| match &tree.entries()[format!("{installs}/{p}").as_bytes()] {
            crate::layer::Node::File { source: crate::layer::FileSource::Bytes(b), .. } => {
                String::from_utf8(b.clone()).unwrap()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            get(".mise-installs.toml"),
            "[gh]\nshort = \"gh\"\nfull = \"ubi:cli/cli\"\nexplicit_backend = false\n\n[gh.opts]\nexe = \"gh\"\n\n[node]\nshort = \"node\"\nfull = \"core:node\"\nexplicit_backend = false"
        );
        assert_eq!(get("node/.mise.backend.toml"), "short = \"node\"\nfull = \"core:node\"\nexplicit_backend = false");
        assert_eq!(
            mise_config(&tools),
            "# Written by sbx build from sbx.lock: the locked toolchain.\n[tools]\ngh = \"2.60.0\"\nnode = \"2.60.0\"\n"
        );
        assert_eq!(
            tree.entries()[format!("{installs}/node/2.60").as_bytes()],
            crate::layer::Node::Symlink(b"./2.60.0".to_vec())
        );
    }
}
