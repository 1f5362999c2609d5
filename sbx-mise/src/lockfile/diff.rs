//! What changed between two lockfiles, structured for `sbx diff`, `sbx lock` and
//! `sbx lock --dry-run`. A changed artifact or checksum under an unchanged version is the
//! red flag a reviewer must see first, so it is its own kind of change.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::model::{LockedPackage, LockedTool, Lockfile};
use crate::Platform;

/// One change to one tool version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChange {
    /// A new tool version.
    Added {
        /// Tool name.
        name: String,
        /// Request as written.
        request: String,
        /// Locked version.
        version: String,
    },
    /// A tool version that is gone.
    Removed {
        /// Tool name.
        name: String,
        /// The version it had.
        version: String,
    },
    /// The version moved.
    Version {
        /// Tool name.
        name: String,
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// `compare_versions(from, to)`: `Less` is an upgrade, `Greater` a downgrade.
        direction: Ordering,
    },
    /// Same version, but the artifact URL or checksum of some platform changed: a red flag.
    Artifacts {
        /// Tool name.
        name: String,
        /// The (unchanged) version.
        version: String,
        /// Platforms whose artifact changed, with what changed.
        platforms: Vec<(Platform, String)>,
    },
    /// Same version of an npm/pipx tool, different dependency closure.
    Closure {
        /// Tool name.
        name: String,
        /// The tool's version.
        version: String,
        /// Packages added (`name version`).
        added: Vec<String>,
        /// Packages removed.
        removed: Vec<String>,
        /// Packages whose version changed (`name from → to`).
        changed: Vec<String>,
        /// Packages whose artifact changed under the same version (red flag).
        tampered: Vec<String>,
    },
}

impl ToolChange {
    /// Whether this change needs a reviewer's attention beyond a normal upgrade.
    pub fn is_red_flag(&self) -> bool {
        match self {
            Self::Artifacts { .. } => true,
            Self::Closure { tampered, .. } => !tampered.is_empty(),
            _ => false,
        }
    }
}

/// Everything that differs between two lockfiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockDiff {
    /// Tool changes, red flags first, then by tool name.
    pub tools: Vec<ToolChange>,
    /// `(old, new)` platform lists when they differ.
    pub platforms: Option<(Vec<Platform>, Vec<Platform>)>,
    /// `(old, new)` base image digests when they differ.
    pub base: Option<(Option<String>, Option<String>)>,
    /// Tool versions present and identical on both sides.
    pub unchanged: usize,
}

impl LockDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.platforms.is_none() && self.base.is_none()
    }
}

/// What to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffOptions {
    /// Compare artifacts (URL, checksum) and closures under unchanged versions. Off when one
    /// side is an image's view, whose "artifacts" are install trees, not downloads: then only
    /// tools, versions, Linux platforms and per-platform base digests are compared.
    pub artifacts: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self { artifacts: true }
    }
}

/// Compares two lockfiles (either may be empty).
pub fn diff(old: &Lockfile, new: &Lockfile) -> LockDiff {
    diff_with(old, new, DiffOptions::default())
}

/// Compares two lockfiles (or lockfile views of images) with `opts`.
pub fn diff_with(old: &Lockfile, new: &Lockfile, opts: DiffOptions) -> LockDiff {
    let mut out = LockDiff::default();
    let platforms = |l: &Lockfile| -> Vec<Platform> {
        l.platforms.iter().copied().filter(|p| opts.artifacts || p.oci_os() == "linux").collect()
    };
    let (op, np) = (platforms(old), platforms(new));
    if op != np {
        out.platforms = Some((op, np));
    }
    out.base = if opts.artifacts {
        let (ob, nb) = (old.base.as_ref().map(|b| b.digest.clone()), new.base.as_ref().map(|b| b.digest.clone()));
        (ob != nb).then_some((ob, nb))
    } else {
        base_by_platform(old, new)
    };
    let names: BTreeSet<&String> = old.tools.keys().chain(new.tools.keys()).collect();
    let empty = Vec::new();
    for name in names {
        let o = old.tools.get(name).unwrap_or(&empty);
        let n = new.tools.get(name).unwrap_or(&empty);
        diff_tool(name, o, n, opts, &mut out);
    }
    out.tools.sort_by_key(|c| !c.is_red_flag());
    out
}

/// Base digests compared per platform both sides have (an image records the platform
/// manifest's digest, a lockfile both the index and the per-platform digests).
fn base_by_platform(old: &Lockfile, new: &Lockfile) -> Option<(Option<String>, Option<String>)> {
    let pin = |l: &Lockfile, p: &Platform| -> Option<String> {
        let b = l.base.as_ref().filter(|b| b.reference != "scratch")?;
        Some(b.platforms.get(p).cloned().unwrap_or_else(|| b.digest.clone()))
    };
    let common: Vec<&Platform> = old.platforms.iter().filter(|p| new.platforms.contains(p)).collect();
    let mut changed = common.iter().filter(|p| pin(old, p) != pin(new, p)).peekable();
    let first = **changed.peek()?;
    let label = |d: Option<String>| d.map(|d| format!("{d} ({first})"));
    Some((label(pin(old, first)), label(pin(new, first))))
}

fn diff_tool(name: &str, old: &[LockedTool], new: &[LockedTool], opts: DiffOptions, out: &mut LockDiff) {
    // A platform added to or dropped from the whole lock is reported once, as a platforms
    // change; only a platform that vanished from one tool while the lock kept it is suspicious.
    let lock_platforms = out.platforms.clone();
    let in_both_locks = |p: &Platform| lock_platforms.as_ref().is_none_or(|(o, n)| o.contains(p) && n.contains(p));
    // Pair entries by position (config order); extra entries are additions or removals.
    for i in 0..old.len().max(new.len()) {
        match (old.get(i), new.get(i)) {
            (Some(o), Some(n)) if o.version != n.version => out.tools.push(ToolChange::Version {
                name: name.to_string(),
                from: o.version.clone(),
                to: n.version.clone(),
                direction: compare_versions(&o.version, &n.version),
            }),
            (Some(o), Some(n)) => {
                let mut changed = Vec::new();
                for p in o.platforms.keys().chain(n.platforms.keys()).collect::<BTreeSet<_>>() {
                    match (o.platforms.get(p), n.platforms.get(p)) {
                        (Some(a), Some(b)) if a.checksum != b.checksum => changed.push((
                            *p,
                            format!("checksum {} → {}", short(&a.checksum.to_string()), short(&b.checksum.to_string())),
                        )),
                        (Some(a), Some(b)) if a.url != b.url => {
                            changed.push((*p, format!("url {} → {}", a.url, b.url)))
                        }
                        (Some(_), None) if in_both_locks(p) => changed.push((*p, "platform removed".into())),
                        (None, Some(_)) if in_both_locks(p) => changed.push((*p, "platform added".into())),
                        _ => {}
                    }
                }
                if !opts.artifacts {
                    out.unchanged += 1;
                    continue;
                }
                let closure = diff_closure(&o.packages, &n.packages);
                let mut any = false;
                if !changed.is_empty() {
                    any = true;
                    out.tools.push(ToolChange::Artifacts {
                        name: name.to_string(),
                        version: n.version.clone(),
                        platforms: changed,
                    });
                }
                if let Some((added, removed, changed, tampered)) = closure {
                    any = true;
                    out.tools.push(ToolChange::Closure {
                        name: name.to_string(),
                        version: n.version.clone(),
                        added,
                        removed,
                        changed,
                        tampered,
                    });
                }
                if !any {
                    out.unchanged += 1;
                }
            }
            (None, Some(n)) => out.tools.push(ToolChange::Added {
                name: name.to_string(),
                request: n.request.clone(),
                version: n.version.clone(),
            }),
            (Some(o), None) => {
                out.tools.push(ToolChange::Removed { name: name.to_string(), version: o.version.clone() })
            }
            (None, None) => {}
        }
    }
}

type ClosureChange = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

/// Package-level changes, keyed by name (and location for npm's nested copies).
fn diff_closure(old: &[LockedPackage], new: &[LockedPackage]) -> Option<ClosureChange> {
    let key = |p: &LockedPackage| (p.name.clone(), p.location.clone(), p.platforms.clone());
    let index = |v: &[LockedPackage]| -> BTreeMap<_, LockedPackage> { v.iter().map(|p| (key(p), p.clone())).collect() };
    let (o, n) = (index(old), index(new));
    let (mut added, mut removed, mut changed, mut tampered) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, np) in &n {
        match o.get(k) {
            None => added.push(format!("{} {}", np.name, np.version)),
            Some(op) if op.version != np.version => {
                changed.push(format!("{} {} → {}", np.name, op.version, np.version))
            }
            Some(op) if op.artifact != np.artifact => tampered.push(format!("{} {}", np.name, np.version)),
            _ => {}
        }
    }
    for (k, op) in &o {
        if !n.contains_key(k) {
            removed.push(format!("{} {}", op.name, op.version));
        }
    }
    for v in [&mut added, &mut removed, &mut changed, &mut tampered] {
        v.sort();
        v.dedup();
    }
    if added.is_empty() && removed.is_empty() && changed.is_empty() && tampered.is_empty() {
        None
    } else {
        Some((added, removed, changed, tampered))
    }
}

fn short(checksum: &str) -> String {
    checksum.chars().take(19).collect::<String>() + "…"
}

/// Orders versions numerically where they look like versions (`1.10` > `1.9`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    if let (Ok(x), Ok(y)) =
        (semver::Version::parse(a.trim_start_matches('v')), semver::Version::parse(b.trim_start_matches('v')))
    {
        return x.cmp(&y);
    }
    let parts = |s: &str| -> Vec<Result<u64, String>> {
        s.trim_start_matches('v').split(['.', '-', '+']).map(|p| p.parse::<u64>().map_err(|_| p.to_string())).collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(x), Err(y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::{Artifact, Checksum};

    fn tool(version: &str, checksum: char) -> LockedTool {
        LockedTool {
            backend: "core:node".into(),
            request: "22".into(),
            version: version.into(),
            runtime: None,
            options: BTreeMap::new(),
            platforms: BTreeMap::from([(
                Platform::LINUX_AMD64,
                Artifact {
                    url: format!("https://n/{version}"),
                    checksum: Checksum::Sha256(checksum.to_string().repeat(64)),
                    size: None,
                },
            )]),
            packages: Vec::new(),
        }
    }

    fn lock(tools: &[(&str, LockedTool)]) -> Lockfile {
        Lockfile { tools: tools.iter().map(|(n, t)| (n.to_string(), vec![t.clone()])).collect(), ..Lockfile::default() }
    }

    #[test]
    fn versions_compare_numerically_and_prereleases_sort_first() {
        assert_eq!(compare_versions("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(compare_versions("22.0.0-rc.1", "22.0.0"), Ordering::Less);
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
    }

    #[test]
    fn classifies_changes_with_red_flags_first() {
        let old = lock(&[("node", tool("22.11.0", 'a')), ("go", tool("1.23.1", 'b')), ("zig", tool("0.13.0", 'c'))]);
        let new = lock(&[("node", tool("22.12.0", 'a')), ("go", tool("1.23.1", 'f')), ("deno", tool("2.0.0", 'd'))]);
        let d = diff(&old, &new);
        assert!(matches!(&d.tools[0], ToolChange::Artifacts { name, .. } if name == "go"), "{d:#?}");
        assert!(d.tools.contains(&ToolChange::Version {
            name: "node".into(),
            from: "22.11.0".into(),
            to: "22.12.0".into(),
            direction: Ordering::Less,
        }));
        assert!(d.tools.contains(&ToolChange::Added {
            name: "deno".into(),
            request: "22".into(),
            version: "2.0.0".into()
        }));
        assert!(d.tools.contains(&ToolChange::Removed { name: "zig".into(), version: "0.13.0".into() }));
        assert!(diff(&old, &old).is_empty());
        assert_eq!(diff(&old, &old).unchanged, 3);
    }

    #[test]
    fn versions_only_ignores_artifacts_and_compares_base_per_platform() {
        let mut old = lock(&[("node", tool("22.11.0", 'a')), ("go", tool("1.23.1", 'b'))]);
        let mut new = lock(&[("node", tool("22.11.0", 'c')), ("go", tool("1.23.2", 'b'))]);
        old.platforms = vec![Platform::LINUX_AMD64, "darwin/arm64".parse().unwrap()];
        new.platforms = vec![Platform::LINUX_AMD64];
        let base = |index: &str, amd: &str| crate::lockfile::LockedBase {
            reference: "debian".into(),
            digest: index.into(),
            platforms: BTreeMap::from([(Platform::LINUX_AMD64, amd.to_string())]),
        };
        old.base = Some(base("sha256:i1", "sha256:m1"));
        new.base = Some(base("sha256:other", "sha256:m1"));
        let d = diff_with(&old, &new, DiffOptions { artifacts: false });
        assert_eq!(d.tools.len(), 1, "{d:#?}");
        assert!(matches!(&d.tools[0], ToolChange::Version { name, .. } if name == "go"));
        assert_eq!((d.platforms, d.base.clone(), d.unchanged), (None, None, 1));
        new.base = Some(base("sha256:other", "sha256:m2"));
        let d = diff_with(&old, &new, DiffOptions { artifacts: false });
        assert_eq!(d.base, Some((Some("sha256:m1 (linux/amd64)".into()), Some("sha256:m2 (linux/amd64)".into()))));
    }
}
