//! Which config files mise would read for a directory, in precedence order.
//!
//! Walks from the project directory up to `/` (stopping below any `MISE_CEILING_PATHS` entry)
//! and, in each directory, looks for every file name mise accepts, lowest precedence first.
//! Files closer to the project win over files further up. The user's global and the system
//! config are included only on request: the sandbox gets the project's toolchain, not the
//! whole machine's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a config file sits in mise's hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `/etc/mise/config.toml` (or `MISE_SYSTEM_CONFIG_FILE`).
    System,
    /// `~/.config/mise/config.toml`, `~/.tool-versions` (or `MISE_GLOBAL_CONFIG_FILE`).
    Global,
    /// Found in the directory walk.
    Local,
}

/// A config file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundFile {
    /// The file.
    pub path: PathBuf,
    /// `{{config_root}}` for it: the directory whose walk found it.
    pub config_root: PathBuf,
    /// Local, global or system.
    pub scope: Scope,
}

/// Inputs of discovery; the environment is passed in so tests never depend on the real one.
#[derive(Clone, Debug)]
pub struct DiscoverOptions {
    /// The project directory (absolute).
    pub project_dir: PathBuf,
    /// The environment (reads `MISE_ENV`, `MISE_CEILING_PATHS`, `MISE_GLOBAL_CONFIG_FILE`,
    /// `MISE_CONFIG_DIR`, `MISE_SYSTEM_CONFIG_FILE`, `XDG_CONFIG_HOME`, `HOME`).
    pub env: BTreeMap<String, String>,
    /// Also read the global and system files (`--global`).
    pub include_global: bool,
}

impl DiscoverOptions {
    /// The `MISE_ENV` profiles in order (comma-separated).
    pub fn mise_envs(&self) -> Vec<String> {
        self.env
            .get("MISE_ENV")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn home(&self) -> Option<PathBuf> {
        self.env.get("HOME").map(PathBuf::from)
    }

    /// The user's global config file mise reads.
    pub fn global_config_file(&self) -> Option<PathBuf> {
        if let Some(f) = self.env.get("MISE_GLOBAL_CONFIG_FILE") {
            return Some(PathBuf::from(f));
        }
        if let Some(d) = self.env.get("MISE_CONFIG_DIR") {
            return Some(Path::new(d).join("config.toml"));
        }
        let config_home =
            self.env.get("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| self.home().map(|h| h.join(".config")))?;
        Some(config_home.join("mise/config.toml"))
    }

    /// The system config file mise reads.
    pub fn system_config_file(&self) -> PathBuf {
        self.env
            .get("MISE_SYSTEM_CONFIG_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/mise/config.toml"))
    }
}

/// File names in one directory, lowest precedence first. `*` entries are conf.d globs.
pub fn local_names(envs: &[String]) -> Vec<String> {
    let mut names: Vec<String> = [
        ".tool-versions",
        ".config/mise/conf.d/*.toml",
        ".config/mise/config.toml",
        ".config/mise/mise.toml",
        ".config/mise.toml",
        ".mise/conf.d/*.toml",
        ".mise/config.toml",
        "mise/config.toml",
        ".rtx.toml",
        "mise.toml",
        ".mise.toml",
    ]
    .map(String::from)
    .to_vec();
    for e in envs {
        names.extend([
            format!(".config/mise/config.{e}.toml"),
            format!(".config/mise.{e}.toml"),
            format!(".mise/config.{e}.toml"),
            format!("mise/config.{e}.toml"),
            format!("mise.{e}.toml"),
            format!(".mise.{e}.toml"),
        ]);
    }
    names.extend(
        [
            ".config/mise/config.local.toml",
            ".config/mise/mise.local.toml",
            ".config/mise.local.toml",
            ".mise/config.local.toml",
            "mise/config.local.toml",
            ".rtx.local.toml",
            "mise.local.toml",
            ".mise.local.toml",
        ]
        .map(String::from),
    );
    for e in envs {
        names.extend([
            format!(".config/mise/config.{e}.local.toml"),
            format!(".config/mise.{e}.local.toml"),
            format!("mise.{e}.local.toml"),
            format!(".mise.{e}.local.toml"),
        ]);
    }
    names
}

/// The directories walked, farthest (lowest precedence) first.
pub fn walked_dirs(opts: &DiscoverOptions) -> Vec<PathBuf> {
    let ceilings: BTreeSet<PathBuf> = opts
        .env
        .get("MISE_CEILING_PATHS")
        .map(|v| v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    let mut dirs = Vec::new();
    for dir in opts.project_dir.ancestors() {
        if ceilings.contains(dir) {
            break;
        }
        dirs.push(dir.to_path_buf());
    }
    dirs.reverse();
    dirs
}

/// Every existing config file, lowest precedence first.
pub fn discover(opts: &DiscoverOptions) -> Vec<FoundFile> {
    let mut out = Vec::new();
    let global = opts.global_config_file();
    let system = opts.system_config_file();
    let home_tool_versions = opts.home().map(|h| h.join(".tool-versions"));
    if opts.include_global {
        let root = opts.home().unwrap_or_else(|| PathBuf::from("/"));
        for (path, scope) in [
            (Some(system.clone()), Scope::System),
            (home_tool_versions.clone(), Scope::Global),
            (global.clone(), Scope::Global),
        ] {
            if let Some(path) = path.filter(|p| p.is_file()) {
                out.push(FoundFile { path, config_root: root.clone(), scope });
            }
        }
    }
    let skip: Vec<PathBuf> = [Some(system), global, home_tool_versions].into_iter().flatten().collect();
    let names = local_names(&opts.mise_envs());
    for dir in walked_dirs(opts) {
        for name in &names {
            for path in expand(&dir, name) {
                if skip.contains(&path) || out.iter().any(|f: &FoundFile| f.path == path) {
                    continue;
                }
                out.push(FoundFile { path, config_root: dir.clone(), scope: Scope::Local });
            }
        }
    }
    out
}

/// Existing files for one name in one directory (`conf.d/*.toml` sorted by file name).
fn expand(dir: &Path, name: &str) -> Vec<PathBuf> {
    match name.strip_suffix("*.toml") {
        None => {
            let p = dir.join(name);
            if p.is_file() { vec![p] } else { Vec::new() }
        }
        Some(sub) => {
            let Ok(read) = std::fs::read_dir(dir.join(sub)) else { return Vec::new() };
            let mut files: Vec<PathBuf> = read
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            files
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_come_after_base_and_before_local() {
        let names = local_names(&["ci".to_string()]);
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos(".tool-versions") < pos("mise.toml"));
        assert!(pos("mise.toml") < pos(".mise.toml"));
        assert!(pos(".mise.toml") < pos("mise.ci.toml"));
        assert!(pos("mise.ci.toml") < pos("mise.local.toml"));
        assert!(pos("mise.local.toml") < pos("mise.ci.local.toml"));
    }

    #[test]
    fn walk_stops_at_ceiling() {
        let opts = DiscoverOptions {
            project_dir: "/a/b/c".into(),
            env: BTreeMap::from([("MISE_CEILING_PATHS".into(), "/a".into())]),
            include_global: false,
        };
        assert_eq!(walked_dirs(&opts), vec![PathBuf::from("/a/b"), PathBuf::from("/a/b/c")]);
    }
}
