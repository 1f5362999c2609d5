//! `pipx:<package>`: a Python application and its whole dependency closure, wheels only, per
//! platform, for the Python the image runs it with.
//!
//! * Python: `ctx.runtimes["python"]` when python is locked in the same run, else
//!   [`DEFAULT_PYTHON`]; recorded as the tool's `runtime` (`python@3.12.7`).
//! * Version: mise's rules ([`matching::select`]) over the releases not entirely yanked.
//! * Closure: [`Resolver`] per platform (markers evaluated for that platform, the best wheel
//!   for its tags); the per-platform pins are merged: the same wheel on every platform is one
//!   entry with `platforms = []`, platform-specific wheels list their platforms.
//! * Metadata comes from PyPI's JSON API, fetched concurrently ([`CONCURRENCY`] at a time),
//!   round by round as the resolver asks. Meanwhile the projects that the newest release of
//!   each project already known requires on the target are requested on a guess (an older
//!   release usually requires the same), so the round that asks for them finds them fetched;
//!   the guess only warms the HTTP client, the resolver sees the same data either way.
//! * An exact version comes from its release page when the index serves one and it answers
//!   before the project document (`Root`); the lock is the same either way.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::{self, Either};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{Requirement, VerbatimUrl};

use super::pypi::project::{Project, fetch_project, fetch_release, fetch_requires, normalize, project_url};
use super::pypi::resolver::{Failure, Need, Pinned, Resolver, Store};
use super::pypi::target::{DEFAULT_PYTHON, Target};
use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedPackage, LockedTool};
use crate::{BackendRef, Platform, VersionRequest};

/// PyPI requests in flight at once.
pub const CONCURRENCY: usize = 16;

/// The `pipx:` backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipxBackend;

/// The `pipx:` backend, for the backend registry.
pub static PIPX: PipxBackend = PipxBackend;

/// The Python version pipx tools are locked for in this run.
pub fn python_version(ctx: &ResolveContext<'_>) -> String {
    ctx.runtimes.get("python").cloned().unwrap_or_else(|| DEFAULT_PYTHON.to_string())
}

async fn root_project(ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Arc<Project>, ResolveError> {
    fetch_project(ctx, &tool.name).await?.ok_or_else(|| no_project(ctx, tool))
}

fn no_project(ctx: &ResolveContext<'_>, tool: &BackendRef) -> ResolveError {
    ResolveError::NoMatch {
        tool: tool.to_string(),
        request: format!("any version ({} has no project `{}`; check the name)", ctx.upstreams.pypi, tool.name),
        nearest: Vec::new(),
    }
}

/// The document `tool==version` is resolved and locked from.
enum Root {
    /// Its release page ([`fetch_release`]), which answered first: it settles an exact version
    /// and stands for the tool's project in the lock.
    Release(Arc<Project>),
    /// The project document (`None`: the index has no such project).
    Project(Option<Arc<Project>>),
}

/// Races the release page of `tool==version` against the project document. Both are memoized
/// by the HTTP client, so the race in `lock` ends as the one in `resolve` did; a missing page
/// (many mirrors serve none) waits for the project document, already on its way.
async fn root_document(ctx: &ResolveContext<'_>, tool: &BackendRef, version: &str) -> Result<Root, ResolveError> {
    let release = std::pin::pin!(fetch_release(ctx, &tool.name, version));
    let project = std::pin::pin!(fetch_project(ctx, &tool.name));
    match future::select(release, project).await {
        Either::Left((Some(release), _)) => Ok(Root::Release(release)),
        Either::Left((None, project)) => Ok(Root::Project(project.await?)),
        Either::Right((project, _)) => Ok(Root::Project(project?)),
    }
}

/// Releases that have at least one file that is not yanked, oldest first.
fn sorted_versions(project: &Project) -> Vec<String> {
    let mut parsed: Vec<(Version, &String)> = project
        .releases
        .iter()
        .filter(|(_, files)| files.iter().any(|f| !f.yanked))
        .filter_map(|(v, _)| Some((Version::from_str(v).ok()?, v)))
        .collect();
    parsed.sort();
    parsed.into_iter().map(|(_, v)| v.clone()).collect()
}

/// The version of the tool a request means, with mise's rules ([`matching::select`]) over the
/// releases that are not entirely yanked.
pub fn select(tool: &BackendRef, project: &Project, request: &VersionRequest) -> Result<String, ResolveError> {
    matching::select(&tool.to_string(), &sorted_versions(project), request)
}

async fn fetch_needs(ctx: &ResolveContext<'_>, store: &mut Store, needs: BTreeSet<Need>) -> Result<(), ResolveError> {
    enum Got {
        Project(String, Option<Arc<Project>>),
        Requires(String, String, Vec<String>),
    }
    let got: Vec<Got> = futures::stream::iter(needs)
        .map(|need| async move {
            match need {
                Need::Project(name) => Ok(Got::Project(name.clone(), fetch_project(ctx, &name).await?)),
                Need::Requires { name, version, wheel_url } => {
                    let lines = fetch_requires(ctx, &name, &version, &wheel_url).await?;
                    Ok::<_, ResolveError>(Got::Requires(name, version, lines))
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for g in got {
        match g {
            Got::Project(name, Some(p)) => {
                store.projects.insert(name, p);
            }
            Got::Project(name, None) => {
                store.absent.insert(name);
            }
            Got::Requires(name, version, lines) => {
                store.requires.insert((name, version), lines);
            }
        }
    }
    Ok(())
}

/// The closure of `tool==version` on one target, fetching metadata round by round.
pub async fn resolve_for(
    ctx: &ResolveContext<'_>,
    store: &mut Store,
    tool: &BackendRef,
    version: &str,
    target: &Target,
) -> Result<Vec<Pinned>, ResolveError> {
    let mut resolver = Resolver::default();
    let mut guessed = Guessed::default();
    let mut warming = FuturesUnordered::new();
    loop {
        for name in likely_needed(store, target, &mut guessed) {
            let url = project_url(&ctx.upstreams.pypi, &name);
            warming.push(async move {
                let _ = ctx.fetch.get(&url).await;
            });
        }
        let needs = match resolver.resolve(store, &tool.name, version, target) {
            Ok(pinned) => return Ok(pinned),
            Err(Failure::Missing(needs)) => needs,
            Err(f) => return Err(failure(ctx, tool, version, target, f)),
        };
        let mut round = std::pin::pin!(fetch_needs(ctx, store, needs));
        loop {
            if warming.is_empty() {
                round.await?;
                break;
            }
            if let Either::Left((result, _)) = future::select(round.as_mut(), warming.next()).await {
                result?;
                break;
            }
        }
    }
}

/// What [`likely_needed`] has looked at and named so far.
#[derive(Default)]
struct Guessed {
    /// Projects whose requirements were read.
    read: BTreeSet<String>,
    /// Projects named.
    named: BTreeSet<String>,
}

/// Projects not fetched yet that the newest release of a project in `store` requires on
/// `target` (markers evaluated, no extras), each named once over the calls sharing `guessed`.
fn likely_needed(store: &Store, target: &Target, guessed: &mut Guessed) -> Vec<String> {
    let mut names = Vec::new();
    for (project, doc) in &store.projects {
        if !guessed.read.insert(project.clone()) {
            continue;
        }
        for line in doc.info.requires_dist.iter().flatten() {
            let Ok(req) = Requirement::<VerbatimUrl>::from_str(line) else { continue };
            let name = normalize(req.name.as_ref());
            if req.evaluate_markers(&target.markers, &[])
                && !store.projects.contains_key(&name)
                && !store.absent.contains(&name)
                && guessed.named.insert(name.clone())
            {
                names.push(name);
            }
        }
    }
    names
}

fn failure(ctx: &ResolveContext<'_>, tool: &BackendRef, version: &str, target: &Target, f: Failure) -> ResolveError {
    let platform = target.platform;
    let python = &target.python;
    match f {
        Failure::Missing(needs) => ResolveError::Unsupported(format!("internal: PyPI data missing: {needs:?}")),
        Failure::NotFound { package, required_by } => ResolveError::Unsupported(format!(
            "{tool} {version}: dependency `{package}` (required by {required_by}) does not exist on {} ({}); \
             check the PyPI setting (SBX_PYPI_URL) or pick another version of {}",
            ctx.upstreams.pypi,
            project_url(&ctx.upstreams.pypi, &package),
            tool.name
        )),
        Failure::NoVersion { package, spec, required_by } => ResolveError::NoMatch {
            tool: format!(
                "{package} (required by {required_by}, in the closure of {tool} {version} on python {python})"
            ),
            request: spec,
            nearest: Vec::new(),
        },
        Failure::NoWheel { package, version: dep_version } => ResolveError::NoArtifact {
            tool: format!("{package} (in the closure of {tool} {version})"),
            version: dep_version,
            platform,
            detail: format!(
                "no {}; sbx installs wheels only — pick another version, another python, or remove {platform} \
                 from [image] platforms",
                target.describe()
            ),
        },
        Failure::Unusable { package, detail } => {
            ResolveError::Unsupported(format!("{tool} {version}: dependency `{package}`: {detail}"))
        }
        Failure::Conflict { package } => ResolveError::Unsupported(format!(
            "{tool} {version}: the requirements on `{package}` could not be reconciled on {platform} with python \
             {python} (sbx's resolver is greedy with limited backtracking); pin another version of {}",
            tool.name
        )),
    }
}

/// Merges per-platform pins: one entry per (name, version, wheel URL), listing the platforms
/// that install it (empty when all do), sorted by name, version, URL.
pub fn merge(pins: Vec<(Platform, Vec<Pinned>)>) -> Vec<LockedPackage> {
    let all: BTreeSet<Platform> = pins.iter().map(|(p, _)| *p).collect();
    let mut merged: BTreeMap<(String, String, String), (Pinned, BTreeSet<Platform>)> = BTreeMap::new();
    for (platform, list) in pins {
        for p in list {
            let key = (p.name.clone(), p.version.clone(), p.url.clone());
            merged.entry(key).or_insert_with(|| (p, BTreeSet::new())).1.insert(platform);
        }
    }
    merged
        .into_values()
        .map(|(p, platforms)| LockedPackage {
            name: p.name,
            version: p.version,
            location: None,
            artifact: Artifact { url: p.url, checksum: Checksum::Sha256(p.sha256), size: p.size },
            platforms: if platforms == all { Vec::new() } else { platforms.into_iter().collect() },
        })
        .collect()
}

#[async_trait]
impl Backend for PipxBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        Ok(sorted_versions(&*root_project(ctx, tool).await?))
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        // A version that exists exactly is taken as is ([`matching::fuzzy`]): its release page
        // settles it when the index serves one.
        let project = match request {
            VersionRequest::Version(v) => match root_document(ctx, tool, v).await? {
                Root::Release(_) => return Ok(v.clone()),
                Root::Project(project) => project.ok_or_else(|| no_project(ctx, tool))?,
            },
            _ => root_project(ctx, tool).await?,
        };
        select(tool, &project, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let python = python_version(ctx);
        let mut store = Store::default();
        if let Root::Release(release) = root_document(ctx, tool, version).await? {
            store.projects.insert(normalize(&tool.name), release);
        }
        let mut pins = Vec::new();
        for &platform in ctx.platforms {
            let target =
                Target::new(platform, &python).map_err(|e| ResolveError::Unsupported(format!("{tool}: {e}")))?;
            pins.push((platform, resolve_for(ctx, &mut store, tool, version, &target).await?));
        }
        Ok(LockedTool {
            backend: tool.to_string(),
            request: request.to_string(),
            version: version.to_string(),
            runtime: Some(format!("python@{python}")),
            options: tool.options.clone(),
            platforms: BTreeMap::new(),
            packages: merge(pins),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, url: &str) -> Pinned {
        Pinned { name: name.into(), version: "1.0".into(), url: url.into(), sha256: "ab".repeat(32), size: Some(1) }
    }

    #[test]
    fn merges_shared_and_platform_wheels() {
        let amd = vec![pin("a", "https://f/a-any.whl"), pin("b", "https://f/b-x86_64.whl")];
        let arm = vec![pin("a", "https://f/a-any.whl"), pin("b", "https://f/b-aarch64.whl")];
        let merged = merge(vec![(Platform::LINUX_AMD64, amd), (Platform::LINUX_ARM64, arm)]);
        let summary: Vec<(String, Vec<Platform>)> =
            merged.iter().map(|p| (p.artifact.url.clone(), p.platforms.clone())).collect();
        assert_eq!(
            summary,
            [
                ("https://f/a-any.whl".to_string(), vec![]),
                ("https://f/b-aarch64.whl".to_string(), vec![Platform::LINUX_ARM64]),
                ("https://f/b-x86_64.whl".to_string(), vec![Platform::LINUX_AMD64]),
            ]
        );
        assert!(merged.iter().all(|p| p.location.is_none() && p.artifact.checksum.algorithm() == "sha256"));
    }

    #[test]
    fn selects_with_mise_rules_skipping_yanked_releases() {
        let project: Project = serde_json::from_value(serde_json::json!({
            "info": {"name": "x", "version": "2.0"},
            "releases": {
                "1.9": [{"filename": "x-1.9-py3-none-any.whl", "url": "u"}],
                "2.0": [{"filename": "x-2.0-py3-none-any.whl", "url": "u"}],
                "2.1": [{"filename": "x-2.1-py3-none-any.whl", "url": "u", "yanked": true}],
                "2.2a1": [{"filename": "x-2.2a1-py3-none-any.whl", "url": "u"}]
            }
        }))
        .unwrap();
        let tool = BackendRef::parse("pipx:x").unwrap().unwrap();
        let sel = |r: &str| select(&tool, &project, &VersionRequest::parse(r).unwrap());
        assert_eq!(sel("latest").unwrap(), "2.0");
        assert_eq!(sel("1").unwrap(), "1.9");
        assert!(sel("3").is_err());
    }

    /// PyPI in memory: project documents only (release documents are 404, as on the mirror
    /// these machines use, so METADATA comes from the wheels); records what was asked.
    struct Pypi {
        projects: BTreeMap<String, serde_json::Value>,
        /// `name/version` → release page (none: as on the mirror these machines use).
        pages: BTreeMap<String, serde_json::Value>,
        /// Project documents that never answer.
        hanging: BTreeSet<String>,
        wheels: BTreeMap<String, Vec<u8>>,
        asked: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl crate::resolve::Fetch for Pypi {
        async fn get(&self, url: &str) -> Result<bytes::Bytes, crate::resolve::FetchError> {
            let path = url.trim_start_matches("http://p/");
            self.asked.lock().unwrap().push(path.to_string());
            if path.starts_with("files/") {
                // A wheel takes a while, as over a network: the guesses are fetched meanwhile.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let name = path.strip_prefix("pypi/").and_then(|p| p.strip_suffix("/json"));
            if name.is_some_and(|n| self.hanging.contains(n)) {
                std::future::pending::<()>().await;
            }
            let body = match name.and_then(|n| self.projects.get(n).or_else(|| self.pages.get(n))) {
                Some(doc) => serde_json::to_vec(doc).ok(),
                None => self.wheels.get(path).cloned(),
            };
            body.map(bytes::Bytes::from).ok_or(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
        }
        async fn sha256_of(&self, url: &str) -> Result<(String, u64), crate::resolve::FetchError> {
            Err(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
        }
    }

    fn wheel(name: &str, version: &str, requires: &[&str]) -> Vec<u8> {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(format!("{name}-{version}.dist-info/METADATA"), zip::write::SimpleFileOptions::default()).unwrap();
        let lines: String = requires.iter().map(|r| format!("Requires-Dist: {r}\n")).collect();
        write!(w, "Name: {name}\nVersion: {version}\n{lines}\n").unwrap();
        w.finish().unwrap();
        buf.into_inner()
    }

    fn project(name: &str, latest: &str, requires: &[&str], versions: &[&str]) -> (String, serde_json::Value) {
        let releases: serde_json::Map<String, serde_json::Value> = versions
            .iter()
            .map(|v| {
                let file = serde_json::json!({
                    "filename": format!("{name}-{v}-py3-none-any.whl"),
                    "url": format!("http://p/files/{name}-{v}-py3-none-any.whl"),
                    "digests": {"sha256": "ab".repeat(32)},
                    "size": 100,
                });
                (v.to_string(), serde_json::json!([file]))
            })
            .collect();
        let info = serde_json::json!({"name": name, "version": latest, "requires_dist": requires});
        (name.to_string(), serde_json::json!({"info": info, "releases": releases}))
    }

    #[tokio::test]
    async fn projects_the_newest_release_requires_are_fetched_on_a_guess_without_changing_the_lock() {
        let pypi = Pypi {
            projects: BTreeMap::from([
                // The newest tool requires `a`, `b` only with an extra, `c` only on Windows and
                // `z`, which the locked 1.0 does not require.
                project(
                    "tool",
                    "2.0",
                    &["a>=1", "b; extra == 'x'", "c; sys_platform == 'win32'", "z"],
                    &["1.0", "2.0"],
                ),
                project("a", "1.0", &[], &["1.0"]),
                project("z", "1.0", &[], &["1.0"]),
            ]),
            pages: BTreeMap::new(),
            hanging: BTreeSet::new(),
            wheels: BTreeMap::from([("files/tool-1.0-py3-none-any.whl".to_string(), wheel("tool", "1.0", &["a>=1"]))]),
            asked: std::sync::Mutex::new(Vec::new()),
        };
        let upstreams =
            crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
        let runtimes = BTreeMap::new();
        let platforms = [Platform::LINUX_AMD64];
        let ctx = ResolveContext { fetch: &pypi, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
        let tool = BackendRef::parse("pipx:tool").unwrap().unwrap();
        let request = VersionRequest::parse("1.0").unwrap();
        let locked = PIPX.lock(&ctx, &tool, &request, "1.0").await.unwrap();
        let pins: Vec<String> = locked.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
        assert_eq!(pins, ["a==1.0", "tool==1.0"]);
        let mut asked = pypi.asked.lock().unwrap().clone();
        asked.sort();
        asked.dedup();
        assert_eq!(
            asked,
            ["files/tool-1.0-py3-none-any.whl", "pypi/a/json", "pypi/tool/1.0/json", "pypi/tool/json", "pypi/z/json"],
            "b (extra) and c (Windows) are not guessed; z is, and is not locked"
        );
    }

    #[tokio::test]
    async fn an_exact_version_is_resolved_and_locked_from_its_release_page() {
        let registry = |pages: bool, hanging: bool| {
            let (name, tool) = project("tool", "2.0", &["a>=1", "z"], &["1.0", "2.0"]);
            let mut page = serde_json::json!({
                "info": {"name": "tool", "version": "1.0", "requires_dist": ["a>=1"]},
                "urls": tool["releases"]["1.0"].clone(),
            });
            let yanked = serde_json::json!({
                "info": {"name": "tool", "version": "1.5"},
                "urls": [{"filename": "tool-1.5-py3-none-any.whl", "url": "http://p/files/t.whl", "yanked": true}],
            });
            page["urls"][0]["url"] = "../../../files/tool-1.0-py3-none-any.whl".into();
            Pypi {
                projects: BTreeMap::from([
                    (name, tool),
                    project("a", "1.0", &[], &["1.0"]),
                    project("z", "1.0", &[], &["1.0"]),
                ]),
                pages: if pages {
                    BTreeMap::from([("tool/1.0".to_string(), page), ("tool/1.5".to_string(), yanked)])
                } else {
                    BTreeMap::new()
                },
                hanging: if hanging { BTreeSet::from(["tool".to_string()]) } else { BTreeSet::new() },
                wheels: BTreeMap::from([(
                    "files/tool-1.0-py3-none-any.whl".to_string(),
                    wheel("tool", "1.0", &["a>=1"]),
                )]),
                asked: std::sync::Mutex::new(Vec::new()),
            }
        };
        let upstreams =
            crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
        let (runtimes, platforms) = (BTreeMap::new(), [Platform::LINUX_AMD64, Platform::LINUX_ARM64]);
        let tool = BackendRef::parse("pipx:tool").unwrap().unwrap();
        let run = |pypi: &'static Pypi, request: &'static str| {
            let (upstreams, runtimes, tool) = (upstreams.clone(), runtimes.clone(), tool.clone());
            async move {
                let ctx =
                    ResolveContext { fetch: pypi, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
                let request = VersionRequest::parse(request).unwrap();
                let version = PIPX.resolve(&ctx, &tool, &request).await?;
                let locked = PIPX.lock(&ctx, &tool, &request, &version).await?;
                let mut asked = pypi.asked.lock().unwrap().clone();
                asked.sort();
                asked.dedup();
                Ok::<_, ResolveError>((locked, asked))
            }
        };
        // The tool's project document never answers: the release page is all the lock needs.
        let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, true)));
        let without: &'static Pypi = Box::leak(Box::new(registry(false, false)));
        let (from_page, _) = tokio::time::timeout(std::time::Duration::from_secs(10), run(with_pages, "1.0"))
            .await
            .expect("locked without the project document")
            .unwrap();
        let (from_project, asked) = run(without, "1.0").await.unwrap();
        assert!(asked.contains(&"pypi/tool/json".to_string()));
        // The same lock, wheel URLs (relative to each document) included.
        assert_eq!(format!("{from_page:?}"), format!("{from_project:?}"));
        assert_eq!(from_page.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "tool"]);

        // A range, and a release whose every file is yanked, go through the project document.
        let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, false)));
        let (ranged, asked) = run(with_pages, "1").await.unwrap();
        assert_eq!((ranged.version.as_str(), asked.contains(&"pypi/tool/json".to_string())), ("1.0", true));
        let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, false)));
        assert!(matches!(run(with_pages, "1.5").await, Err(ResolveError::NoMatch { .. })));
    }
}
