//! The dependency closure of one Python application on one [`Target`], wheels only.
//!
//! Resolution is greedy with limited backtracking, which is enough for CLI tools (black, ruff,
//! httpie, …), not a general SAT solver:
//!
//! * requirements are taken breadth-first; each project gets the newest version that satisfies
//!   the requirement and every constraint learnt so far, is not yanked, accepts the target's
//!   Python (`Requires-Python`) and has a wheel for the target; prereleases only when the
//!   requirement names one or nothing else fits (PEP 440);
//! * when a later requirement rejects a version already chosen, it becomes a constraint on that
//!   project and resolution starts over; when a constraint leaves a requirement without any
//!   version, the release that introduced the constraint is excluded instead;
//! * after [`MAX_RESTARTS`] restarts it gives up with a conflict naming the project.
//!
//! Like the npm layout, it is pure: missing project documents and metadata are reported as
//! [`Need`]s, the caller fetches them and runs it again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, Requirement, VerbatimUrl, VersionOrUrl};

use super::project::{File, Project, normalize};
use super::target::Target;

/// How often resolution may start over after a conflict.
pub const MAX_RESTARTS: usize = 64;

/// Project documents and release metadata fetched so far.
#[derive(Debug, Default)]
pub struct Store {
    /// Normalised name → project.
    pub projects: BTreeMap<String, Arc<Project>>,
    /// Names PyPI does not know (404).
    pub absent: BTreeSet<String>,
    /// `(name, version)` → `Requires-Dist`.
    pub requires: BTreeMap<(String, String), Vec<String>>,
}

/// Something to fetch before resolution can finish.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// A project document.
    Project(String),
    /// A release's `Requires-Dist` (the caller picks the wheel whose METADATA says: a
    /// release's wheels declare the same dependencies).
    Requires {
        /// Normalised name.
        name: String,
        /// Version.
        version: String,
    },
}

/// One pinned wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// Normalised project name.
    pub name: String,
    /// Version.
    pub version: String,
    /// URL of the chosen wheel.
    pub url: String,
    /// Its sha256.
    pub sha256: String,
    /// Its size.
    pub size: Option<u64>,
}

/// Why no closure could be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Fetch these and run again.
    Missing(BTreeSet<Need>),
    /// A required project does not exist.
    NotFound {
        /// The project.
        package: String,
        /// Who requires it.
        required_by: String,
    },
    /// No release satisfies the requirement (and the constraints learnt).
    NoVersion {
        /// The project.
        package: String,
        /// The requirement's specifiers.
        spec: String,
        /// Who requires it.
        required_by: String,
    },
    /// Releases satisfy the requirement but none has a wheel for the target.
    NoWheel {
        /// The project.
        package: String,
        /// The newest release that would otherwise have been chosen.
        version: String,
        /// The `Requires-Python` of its wheels for the target's tags, when that is what rules
        /// them out (`>=3.13` on python 3.12).
        requires_python: Option<String>,
        /// The newest stable release of the project with a wheel for the target, if any.
        newest_usable: Option<String>,
    },
    /// A requirement or metadata sbx cannot use (URL requirement, unparsable line, no sha256).
    Unusable {
        /// The project concerned.
        package: String,
        /// What is wrong.
        detail: String,
    },
    /// Conflicts did not settle within [`MAX_RESTARTS`].
    Conflict {
        /// The project whose requirements could not be reconciled.
        package: String,
    },
}

enum Pass {
    Failed(Failure),
    /// `name` chosen at a version a later requirement rejects.
    Reject {
        name: String,
        spec: VersionSpecifiers,
        by: (String, String),
    },
    /// A requirement on `name` admits no version given `constraint`.
    Blocked {
        name: String,
        constraint: usize,
    },
}

struct Constraint {
    spec: VersionSpecifiers,
    by: (String, String),
}

/// Learnt constraints and exclusions; kept across fetch rounds so restarts are not repeated.
#[derive(Default)]
pub struct Resolver {
    /// Extras of the root (`harlequin[postgres]`), whose requirements join the closure.
    pub root_extras: Vec<ExtraName>,
    constraints: BTreeMap<String, Vec<Constraint>>,
    excluded: BTreeSet<(String, String)>,
    restarts: usize,
}

struct Chosen {
    version: Version,
    extras: BTreeSet<ExtraName>,
    file: File,
}

struct Job {
    req: Requirement<VerbatimUrl>,
    by: (String, String),
}

impl Resolver {
    /// Resolves `root==version` and its closure for `target`, sorted by name.
    pub fn resolve(
        &mut self,
        store: &Store,
        root: &str,
        version: &str,
        target: &Target,
    ) -> Result<Vec<Pinned>, Failure> {
        loop {
            match self.pass(store, root, version, target) {
                Ok(pinned) => return Ok(pinned),
                Err(Pass::Failed(f)) => return Err(f),
                Err(Pass::Reject { name, spec, by }) => {
                    self.bump(&name)?;
                    self.constraints.entry(name).or_default().push(Constraint { spec, by });
                }
                Err(Pass::Blocked { name, constraint }) => {
                    self.bump(&name)?;
                    let list = self.constraints.entry(name.clone()).or_default();
                    let c = list.remove(constraint);
                    if c.by.0 == normalize(root) {
                        return Err(Failure::Conflict { package: name });
                    }
                    self.excluded.insert(c.by);
                }
            }
        }
    }

    fn bump(&mut self, name: &str) -> Result<(), Failure> {
        self.restarts += 1;
        if self.restarts > MAX_RESTARTS {
            return Err(Failure::Conflict { package: name.to_string() });
        }
        Ok(())
    }

    fn pass(&self, store: &Store, root: &str, version: &str, target: &Target) -> Result<Vec<Pinned>, Pass> {
        let extras: Vec<&str> = self.root_extras.iter().map(ExtraName::as_ref).collect();
        let extras = if extras.is_empty() { String::new() } else { format!("[{}]", extras.join(",")) };
        let root_req = parse_req(&format!("{root}{extras}=={version}"), root).map_err(Pass::Failed)?;
        let mut queue = VecDeque::from([Job { req: root_req, by: ("config".into(), String::new()) }]);
        let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        while let Some(job) = queue.pop_front() {
            let name = normalize(job.req.name.as_ref());
            let spec = match &job.req.version_or_url {
                None => VersionSpecifiers::empty(),
                Some(VersionOrUrl::VersionSpecifier(s)) => s.clone(),
                Some(VersionOrUrl::Url(url)) => {
                    return Err(Pass::Failed(Failure::Unusable {
                        package: name,
                        detail: format!("{} requires it from a URL ({url}); sbx locks PyPI releases only", job.by.0),
                    }));
                }
            };
            let new_extras: BTreeSet<ExtraName> = job.req.extras.iter().cloned().collect();
            if let Some(c) = chosen.get_mut(&name) {
                if !spec.contains(&c.version) {
                    return Err(Pass::Reject { name, spec, by: job.by });
                }
                let added: Vec<ExtraName> = new_extras.difference(&c.extras).cloned().collect();
                if added.is_empty() {
                    continue;
                }
                c.extras.extend(added);
                let (v, extras) = (c.version.to_string(), c.extras.clone());
                self.enqueue(store, &name, &v, &extras, target, &mut queue, &mut missing)?;
                continue;
            }
            let Some(project) = store.projects.get(&name) else {
                if store.absent.contains(&name) {
                    return Err(Pass::Failed(Failure::NotFound { package: name, required_by: job.by.0 }));
                }
                missing.insert(Need::Project(name));
                continue;
            };
            let (version, file) = self.choose(&name, project, &spec, &job.by, target)?;
            let v = version.to_string();
            self.enqueue(store, &name, &v, &new_extras, target, &mut queue, &mut missing)?;
            chosen.insert(name.clone(), Chosen { version, extras: new_extras.clone(), file });
        }
        if !missing.is_empty() {
            return Err(Pass::Failed(Failure::Missing(missing)));
        }
        chosen
            .into_iter()
            .map(|(name, c)| {
                let sha256 = c.file.digests.sha256.clone().filter(|h| h.len() == 64).ok_or_else(|| {
                    Pass::Failed(Failure::Unusable {
                        package: name.clone(),
                        detail: format!("PyPI publishes no sha256 for {}", c.file.filename),
                    })
                })?;
                Ok(Pinned { name, version: c.version.to_string(), url: c.file.url, sha256, size: c.file.size })
            })
            .collect()
    }

    /// The newest usable release of `name` for `spec`.
    fn choose(
        &self,
        name: &str,
        project: &Project,
        spec: &VersionSpecifiers,
        by: &(String, String),
        target: &Target,
    ) -> Result<(Version, File), Pass> {
        let constraints = self.constraints.get(name).map(Vec::as_slice).unwrap_or_default();
        let versions: Vec<(Version, &[File])> =
            project.releases_newest_first().into_iter().map(|(v, _, files)| (v, files)).collect();
        let fits = |v: &Version| spec.contains(v) && !self.excluded.contains(&(name.to_string(), v.to_string()));
        let allowed: Vec<&(Version, &[File])> = versions.iter().filter(|(v, _)| fits(v)).collect();
        let stable_exists = allowed.iter().any(|(v, _)| !v.any_prerelease());
        let pre_ok = spec.iter().any(|s| s.any_prerelease()) || !stable_exists;
        let mut without_wheel = None;
        for (v, files) in allowed.iter().filter(|(v, _)| pre_ok || !v.any_prerelease()) {
            if !constraints.iter().all(|c| c.spec.contains(v)) {
                continue;
            }
            match best_wheel(files, target) {
                Some(file) => return Ok((v.clone(), file.clone())),
                None if files.iter().any(|f| !f.yanked) => {
                    without_wheel.get_or_insert((v, *files));
                }
                None => {}
            }
        }
        if let Some((version, files)) = without_wheel {
            let requires_python = files
                .iter()
                .filter(|f| !f.yanked && target.wheel_rank(&f.filename).is_some())
                .find_map(|f| f.requires_python.clone());
            let newest_usable = versions
                .iter()
                .find(|(v, files)| !v.any_prerelease() && best_wheel(files, target).is_some())
                .map(|(v, _)| v.to_string());
            return Err(Pass::Failed(Failure::NoWheel {
                package: name.to_string(),
                version: version.to_string(),
                requires_python,
                newest_usable,
            }));
        }
        if !allowed.is_empty()
            && let Some(i) = constraints.iter().position(|c| {
                !allowed.iter().any(|(v, files)| c.spec.contains(v) && best_wheel(files, target).is_some())
            })
        {
            return Err(Pass::Blocked { name: name.to_string(), constraint: i });
        }
        let spec = if spec.iter().next().is_none() { "any version".to_string() } else { spec.to_string() };
        Err(Pass::Failed(Failure::NoVersion {
            package: name.to_string(),
            spec,
            required_by: format!("{} {}", by.0, by.1),
        }))
    }

    /// Queues the requirements of `name==version` that apply with `extras` on the target.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        store: &Store,
        name: &str,
        version: &str,
        extras: &BTreeSet<ExtraName>,
        target: &Target,
        queue: &mut VecDeque<Job>,
        missing: &mut BTreeSet<Need>,
    ) -> Result<(), Pass> {
        let key = (name.to_string(), version.to_string());
        let Some(lines) = store.requires.get(&key) else {
            missing.insert(Need::Requires { name: key.0, version: key.1 });
            return Ok(());
        };
        let extras: Vec<ExtraName> = extras.iter().cloned().collect();
        for line in lines {
            let req = parse_req(line, name).map_err(Pass::Failed)?;
            if req.evaluate_markers(&target.markers, &extras) {
                queue.push_back(Job { req, by: (name.to_string(), version.to_string()) });
            }
        }
        Ok(())
    }
}

fn parse_req(line: &str, package: &str) -> Result<Requirement<VerbatimUrl>, Failure> {
    Requirement::from_str(line).map_err(|e| Failure::Unusable {
        package: package.to_string(),
        detail: format!("bad requirement `{line}`: {e}"),
    })
}

/// The best wheel of a release for `target`: the [`installable`] one of the lowest tag rank;
/// ties broken by file name for stability.
pub fn best_wheel<'f>(files: &'f [File], target: &Target) -> Option<&'f File> {
    installable(files, target).min_by(|a, b| (a.0, &a.1.filename).cmp(&(b.0, &b.1.filename))).map(|(_, f)| f)
}

/// The wheels of a release `target` can install, with their tag rank
/// ([`Target::wheel_rank`]): not yanked, `Requires-Python` accepting the target's Python.
pub fn installable<'f>(files: &'f [File], target: &Target) -> impl Iterator<Item = (usize, &'f File)> {
    let python = Version::from_str(&target.markers.python_full_version().to_string()).ok();
    let accepts = move |f: &File| {
        let Some(python) = &python else { return false };
        f.requires_python
            .as_deref()
            .is_none_or(|rp| VersionSpecifiers::from_str(rp).map_or(true, |s| s.contains(python)))
    };
    files
        .iter()
        .filter(|f| !f.yanked)
        .filter(move |f| accepts(f))
        .filter_map(|f| Some((target.wheel_rank(&f.filename)?, f)))
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
