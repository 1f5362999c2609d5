//! PyPI's simple repository API, where sbx reads a project from: `GET <pypi>/simple/<name>/`,
//! the API every Python package index serves and pip and uv read. It lists every file of a
//! project: URL, sha256, `Requires-Python`, whether it is yanked (PEP 592) and whether the
//! index serves its METADATA on its own (PEP 658/714).
//!
//! * The JSON form (PEP 691, with PEP 700's sizes) is asked for first; an index that only has
//!   the HTML form (PEP 503: GitLab, CodeArtifact, older Nexus and devpi) answers that, and
//!   its anchors are read with their `data-*` attributes. Sizes come with JSON only (the pipx
//!   backend asks the server for the sizes of the wheels it locks from an HTML page).
//! * PyPI's JSON API (`/pypi/<name>/json`) is not read: on the PyPI mirror sbx's figures come
//!   from it took 60–200 ms per project against a few milliseconds here, PyPI deprecates its
//!   `releases` key, and its `info.requires_dist` comes from one of the release's files and can
//!   disagree with the wheel a target installs (httpx2 2.16.2's says `httpcore2==2.16.0`, its
//!   wheel `==2.16.2`).
//!
//! A page carries no `Requires-Dist`: each release's comes from the METADATA of one of its
//! wheels ([`super::metadata`]).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::pep440_rs::Version;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::project::{self, Digests, File, Project, normalize};
use crate::resolve::{FetchError, ResolveContext, ResolveError, documents};

/// What sbx asks a simple index for, as uv does: PEP 691 JSON, else HTML.
pub const ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// The simple index page of a project.
pub fn simple_url(pypi: &str, name: &str) -> String {
    format!("{}/simple/{}/", pypi.trim_end_matches('/'), normalize(name))
}

/// Fetches a project's page; `None` when the index has no such project (404). Parsed once per
/// run and shared ([`documents::parsed`]).
pub async fn fetch_project(ctx: &ResolveContext<'_>, name: &str) -> Result<Option<Arc<Project>>, ResolveError> {
    let url = simple_url(&ctx.upstreams.pypi, name);
    let body = match ctx.fetch.get_accepting(&url, ACCEPT).await {
        Ok(body) => body,
        Err(FetchError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (source, project) = (url.clone(), name.to_string());
    let parsed = documents::parsed(ctx.fetch, &url, body, move |body| parse(&source, &project, body));
    Ok(Some(parsed.await?))
}

/// A simple index page; the fields sbx does not use are ignored.
#[derive(Deserialize)]
struct Page {
    meta: Meta,
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: Hashes,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    yanked: Flag,
    #[serde(default, rename = "core-metadata")]
    core_metadata: Flag,
    /// PEP 658's name for `core-metadata`, still sent beside it.
    #[serde(default, rename = "data-dist-info-metadata")]
    dist_info_metadata: Flag,
}

/// A file's digests; sbx records the sha256.
#[derive(Default, Deserialize)]
struct Hashes {
    sha256: Option<String>,
}

/// `false` or `null` (off), `true`, a digest table (metadata: `{"sha256": …}`) or anything
/// else that is set (a yank reason). Read by hand: serde's untagged enums buffer each value,
/// a third of the time of a page that lists thousands of files.
#[derive(Default)]
enum Flag {
    #[default]
    Off,
    /// Set; the sha256 of a digest table.
    On(Option<String>),
}

impl Flag {
    fn is_set(&self) -> bool {
        matches!(self, Flag::On(_))
    }

    fn sha256(&self) -> Option<String> {
        match self {
            Flag::On(sha256) => sha256.clone(),
            Flag::Off => None,
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a boolean, a digest table or a reason")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
        Ok(if v { Flag::On(None) } else { Flag::Off })
    }

    fn visit_unit<E>(self) -> Result<Flag, E> {
        Ok(Flag::Off)
    }

    fn visit_str<E>(self, _: &str) -> Result<Flag, E> {
        Ok(Flag::On(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
        Ok(Flag::On(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
        Ok(Flag::On(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
        Ok(Flag::On(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Flag, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Flag::On(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flag, A::Error> {
        let mut sha256 = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "sha256" {
                sha256 = map.next_value::<serde_json::Value>()?.as_str().map(str::to_string);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Flag::On(sha256))
    }
}

/// A simple index page, JSON (PEP 691) or HTML (PEP 503), as a [`Project`]: releases keyed by
/// the version each file name carries (canonical PEP 440), file URLs absolute.
pub fn parse(source: &str, name: &str, body: &[u8]) -> Result<Project, ResolveError> {
    let files =
        if body.trim_ascii_start().starts_with(b"{") { json_files(source, body)? } else { html_files(source, body)? };
    let mut releases: BTreeMap<String, Vec<File>> = BTreeMap::new();
    // A release's files carry the same version text: each is parsed once (ruff: 7000 files,
    // 430 releases).
    let mut canonical: HashMap<String, Option<String>> = HashMap::new();
    for file in files {
        let Some(raw) = raw_version(&file.filename, name) else { continue };
        let version = match canonical.get(raw) {
            Some(version) => version.clone(),
            None => {
                let version = Version::from_str(raw).ok().map(|v| v.to_string());
                canonical.insert(raw.to_string(), version.clone());
                version
            }
        };
        if let Some(version) = version {
            releases.entry(version).or_default().push(file);
        }
    }
    project::absolute_urls(source, releases.values_mut().flatten())?;
    Ok(Project { releases })
}

fn malformed(source: &str, message: String) -> ResolveError {
    ResolveError::Malformed { url: source.to_string(), message }
}

/// The files of a PEP 691 page.
fn json_files(source: &str, body: &[u8]) -> Result<Vec<File>, ResolveError> {
    let page: Page =
        serde_json::from_slice(body).map_err(|e| malformed(source, format!("not a PEP 691 simple index page: {e}")))?;
    if page.meta.api_version.split('.').next() != Some("1") {
        return Err(malformed(
            source,
            format!(
                "simple API version {} is not one sbx reads (1.x); point the PyPI setting (SBX_PYPI_URL) at an \
                 index that serves version 1",
                page.meta.api_version
            ),
        ));
    }
    let files = page.files.into_iter().map(|f| {
        let metadata = (f.core_metadata.is_set() || f.dist_info_metadata.is_set())
            .then(|| Digests { sha256: f.core_metadata.sha256().or_else(|| f.dist_info_metadata.sha256()) });
        File {
            filename: f.filename,
            url: f.url,
            digests: Digests { sha256: f.hashes.sha256 },
            size: f.size,
            requires_python: f.requires_python,
            yanked: f.yanked.is_set(),
            metadata,
        }
    });
    Ok(files.collect())
}

/// The files of a PEP 503 page: one anchor per file, its text the file name, the sha256 in the
/// URL's fragment, the rest in `data-*` attributes (HTML entities decoded).
fn html_files(source: &str, body: &[u8]) -> Result<Vec<File>, ResolveError> {
    let text = std::str::from_utf8(body).map_err(|e| malformed(source, format!("not a simple index page: {e}")))?;
    let dom = tl::parse(text, tl::ParserOptions::default())
        .map_err(|e| malformed(source, format!("not a simple index page: {e}")))?;
    let parser = dom.parser();
    let mut files = Vec::new();
    for tag in dom.nodes().iter().filter_map(tl::Node::as_tag) {
        if !tag.name().as_utf8_str().eq_ignore_ascii_case("a") {
            continue;
        }
        let attributes = tag.attributes();
        let attribute = |key: &str| -> Option<Option<String>> {
            attributes
                .get(key)
                .map(|value| value.map(|v| html_escape::decode_html_entities(&v.as_utf8_str()).into_owned()))
        };
        let Some(Some(href)) = attribute("href") else { continue };
        let (url, fragment) = href.split_once('#').unwrap_or((href.as_str(), ""));
        let text = tag.inner_text(parser);
        let mut filename = html_escape::decode_html_entities(text.trim()).into_owned();
        if filename.is_empty() {
            filename = url.rsplit('/').next().unwrap_or_default().to_string();
        }
        let metadata = metadata_attribute(attribute("data-core-metadata"))
            .or_else(|| metadata_attribute(attribute("data-dist-info-metadata")));
        files.push(File {
            filename,
            url: url.to_string(),
            digests: Digests { sha256: fragment.strip_prefix("sha256=").map(str::to_string) },
            size: None,
            requires_python: attribute("data-requires-python").flatten().filter(|v| !v.is_empty()),
            yanked: attributes.contains("data-yanked"),
            metadata,
        });
    }
    if files.is_empty() {
        // A sign-in or error page served with 200, as private indexes do, more likely than a
        // project without a single file.
        return Err(malformed(
            source,
            "an HTML page without a single file link, not a simple index page; check the PyPI setting \
             (SBX_PYPI_URL, [mirrors] pypi) and the index's credentials"
                .into(),
        ));
    }
    Ok(files)
}

/// PEP 714's `data-core-metadata` (or PEP 658's older name): present with `true` or
/// `<hash>=<value>`; `false` means absent.
fn metadata_attribute(value: Option<Option<String>>) -> Option<Digests> {
    match value? {
        Some(v) if v.eq_ignore_ascii_case("false") => None,
        Some(v) => Some(Digests { sha256: v.strip_prefix("sha256=").map(str::to_string) }),
        None => Some(Digests { sha256: None }),
    }
}

/// The version a distribution file of project `name` carries in its name, as written: wheels
/// and eggs (`name-1.0-py3-none-any.whl`), source archives (`Name_x-1.0.tar.gz`); `None` for
/// other files. [`parse`] keys releases by its canonical PEP 440 form.
fn raw_version<'f>(filename: &'f str, name: &str) -> Option<&'f str> {
    if let Some(stem) = filename.strip_suffix(".whl").or_else(|| filename.strip_suffix(".egg")) {
        return stem.split('-').nth(1);
    }
    let stem =
        [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar"].iter().find_map(|ext| filename.strip_suffix(ext))?;
    let name = normalize(name);
    stem.char_indices()
        .filter(|&(_, c)| c == '-')
        .find_map(|(i, _)| (normalize(&stem[..i]) == name).then(|| &stem[i + 1..]))
}

#[cfg(test)]
#[path = "simple_tests.rs"]
mod tests;
