//! Native binaries of npm wrapper packages. Some agents (Claude Code, opencode) and mise publish a thin
//! npm package whose `bin` is a placeholder (`bin/claude.exe`); a `postinstall` script copies the
//! native binary from the matching per-platform optional dependency over it. sbx runs no
//! lifecycle scripts, so for the packages listed here the build places that binary itself: the
//! locked closure of one platform holds that platform's package (its `os`/`cpu`/`libc` matched at
//! lock time), and its binary is hard-linked over the placeholder (stored once in the layer).
//! The result needs no Node.js at run time.

use std::path::{Path, PathBuf};

use crate::error::{ImageError, IoContext, Result};

/// A wrapper package and where its native binary comes from.
struct NativeWrapper {
    /// The wrapper's npm name.
    package: &'static str,
    /// The placeholder inside the wrapper package that the binary replaces.
    placeholder: &'static str,
    /// Platform packages are named `<prefix><os>-<arch>…`.
    platform_prefix: &'static str,
    /// Variants that are never the glibc build for a standard CPU.
    skip_suffixes: &'static [&'static str],
    /// The binary inside the platform package.
    binary: &'static str,
}

const WRAPPERS: &[NativeWrapper] = &[
    NativeWrapper {
        package: "@anthropic-ai/claude-code",
        placeholder: "bin/claude.exe",
        platform_prefix: "@anthropic-ai/claude-code-linux-",
        skip_suffixes: &["-musl", "-android"],
        binary: "claude",
    },
    NativeWrapper {
        package: "opencode-ai",
        placeholder: "bin/opencode.exe",
        platform_prefix: "opencode-linux-",
        skip_suffixes: &["-musl", "-baseline"],
        binary: "bin/opencode",
    },
    // mise's wrapper has no optional dependencies: its `preinstall` script runs
    // `npm install @jdxcode/mise-<os>-<arch>@<version>`; sbx-mise's npm resolver locks those
    // platform packages as if they were optional dependencies.
    NativeWrapper {
        package: "@jdxcode/mise",
        placeholder: "bin/mise",
        platform_prefix: "@jdxcode/mise-linux-",
        skip_suffixes: &["-musl"],
        binary: "bin/mise",
    },
];

/// Platform package directories under `node_modules` whose name starts with `prefix`, sorted.
fn platform_dirs(node_modules: &Path, prefix: &str, skip: &[&str]) -> Vec<PathBuf> {
    let (scope_dir, name_prefix) = match prefix.split_once('/') {
        Some((scope, rest)) => (node_modules.join(scope), rest),
        None => (node_modules.to_path_buf(), prefix),
    };
    let Ok(entries) = std::fs::read_dir(&scope_dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(name_prefix) && !skip.iter().any(|s| n.ends_with(s) || n.contains(&format!("{s}-"))))
        .map(|n| scope_dir.join(n))
        .collect();
    dirs.sort();
    dirs
}

/// Places the native binary of `root_name` (installed under `lib/node_modules`) over its
/// placeholder; does nothing for packages that are not listed wrappers.
pub(crate) fn place_native_binary(root_name: &str, lib: &Path) -> Result<()> {
    let Some(w) = WRAPPERS.iter().find(|w| w.package == root_name) else { return Ok(()) };
    let root = lib.join("node_modules").join(root_name);
    let placeholder = root.join(w.placeholder);
    let search = [root.join("node_modules"), lib.join("node_modules")];
    let found = search
        .iter()
        .flat_map(|nm| platform_dirs(nm, w.platform_prefix, w.skip_suffixes))
        .map(|dir| dir.join(w.binary))
        .find(|bin| std::fs::symlink_metadata(bin).is_ok_and(|m| m.is_file()));
    let Some(binary) = found else {
        return Err(ImageError::Unsupported {
            what: format!("{root_name} without its native platform package ({}<platform>)", w.platform_prefix),
            help: "relock with `sbx lock --upgrade` so the per-platform optional dependency is locked".into(),
        });
    };
    if std::fs::symlink_metadata(&placeholder).is_ok() {
        std::fs::remove_file(&placeholder).at(&placeholder)?;
    }
    if let Some(dir) = placeholder.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    if std::fs::hard_link(&binary, &placeholder).is_err() {
        std::fs::copy(&binary, &placeholder).at(&placeholder)?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&placeholder, std::fs::Permissions::from_mode(0o755)).at(&placeholder)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn claude_binary_replaces_the_placeholder() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path();
        let nm = lib.join("node_modules/@anthropic-ai");
        write(&nm.join("claude-code/bin/claude.exe"), "placeholder");
        write(&nm.join("claude-code-linux-x64-musl/claude"), "musl build");
        write(&nm.join("claude-code-linux-x64/claude"), "native build");
        place_native_binary("@anthropic-ai/claude-code", lib).unwrap();
        let placed = nm.join("claude-code/bin/claude.exe");
        assert_eq!(std::fs::read_to_string(&placed).unwrap(), "native build");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&placed).unwrap().permissions().mode() & 0o777, 0o755);
        // Other packages are left alone.
        place_native_binary("prettier", lib).unwrap();
    }

    #[test]
    fn mise_binary_from_its_nested_platform_package() {
        let tmp = tempfile::tempdir().unwrap();
        let nm = tmp.path().join("node_modules/@jdxcode");
        write(&nm.join("mise/package.json"), "{}");
        write(&nm.join("mise/node_modules/@jdxcode/mise-linux-x64/bin/mise"), "mise build");
        place_native_binary("@jdxcode/mise", tmp.path()).unwrap();
        assert_eq!(std::fs::read_to_string(nm.join("mise/bin/mise")).unwrap(), "mise build");
    }

    #[test]
    fn a_missing_platform_package_is_an_error_not_a_stub() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("node_modules/opencode-ai/bin/opencode.exe"), "placeholder");
        write(&tmp.path().join("node_modules/opencode-linux-x64-baseline/bin/opencode"), "baseline");
        let err = place_native_binary("opencode-ai", tmp.path()).unwrap_err();
        assert!(err.to_string().contains("native platform package"), "{err}");
    }
}
