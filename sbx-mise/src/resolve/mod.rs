//! Version resolution: one [`Backend`] per tool source, behind one trait.
//!
//! A backend lists a tool's versions, picks the one a [`VersionRequest`] means (mise's
//! semantics), and describes what to download for each target platform with a checksum.
//! All network access goes through [`Fetch`], so the same code talks to the real upstream or
//! to a loopback fixture server; only the base URLs in [`Upstreams`] differ.

pub mod cargo;
pub mod documents;
pub mod github;
pub mod go;
pub mod matching;
pub mod node;
pub mod npm;
pub mod pipx;
pub mod pypi;
pub mod python;
pub mod registry;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::credentials::Credentials;
use crate::lockfile::LockedTool;
use crate::{BackendRef, Platform, VersionRequest};

/// Base URLs of every upstream sbx talks to. Each is overridable (mise-compatible env vars,
/// `[mirrors]` in `.sbx.toml`) so tests and air-gapped users can point elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstreams {
    /// Node.js distribution (`index.json`, `v*/SHASUMS256.txt`); mise: `MISE_NODE_MIRROR_URL`.
    pub node: String,
    /// Go downloads index (`?mode=json&include=all`).
    pub go: String,
    /// GitHub REST API (releases of `github:`/`ubi:` tools and python-build-standalone).
    pub github_api: String,
    /// npm registry.
    pub npm: String,
    /// PyPI JSON/simple API root.
    pub pypi: String,
    /// crates.io sparse index.
    pub crates_index: String,
    /// crates.io download endpoint.
    pub crates_download: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            node: "https://nodejs.org/dist".into(),
            go: "https://go.dev/dl".into(),
            github_api: "https://api.github.com".into(),
            npm: "https://registry.npmjs.org".into(),
            pypi: "https://pypi.org".into(),
            crates_index: "https://index.crates.io".into(),
            crates_download: "https://static.crates.io/crates".into(),
        }
    }
}

impl Upstreams {
    /// The defaults with mise-compatible and sbx environment overrides applied:
    /// `MISE_NODE_MIRROR_URL`, then `SBX_NODE_URL`, `SBX_GO_URL`, `SBX_GITHUB_API_URL`,
    /// `SBX_NPM_URL`, `SBX_PYPI_URL`, `SBX_CRATES_INDEX_URL`, `SBX_CRATES_DOWNLOAD_URL`.
    pub fn from_env() -> Self {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`Upstreams::from_env`] reading variables through `get` (for a captured environment).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut u = Self::default();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty()).map(|v| v.trim().trim_end_matches('/').to_string());
        if let Some(v) = get("MISE_NODE_MIRROR_URL") {
            u.node = v;
        }
        for (key, field) in [
            ("SBX_NODE_URL", &mut u.node),
            ("SBX_GO_URL", &mut u.go),
            ("SBX_GITHUB_API_URL", &mut u.github_api),
            ("SBX_NPM_URL", &mut u.npm),
            ("SBX_PYPI_URL", &mut u.pypi),
            ("SBX_CRATES_INDEX_URL", &mut u.crates_index),
            ("SBX_CRATES_DOWNLOAD_URL", &mut u.crates_download),
        ] {
            if let Some(v) = get(key) {
                *field = v;
            }
        }
        u
    }

    /// These upstreams without the user names and passwords written into their URLs, and
    /// those credentials by origin ([`crate::credentials`]): no URL sbx writes or prints
    /// carries them.
    pub fn split_credentials(mut self) -> (Self, Credentials) {
        let mut credentials = Credentials::default();
        for url in [
            &mut self.node,
            &mut self.go,
            &mut self.github_api,
            &mut self.npm,
            &mut self.pypi,
            &mut self.crates_index,
            &mut self.crates_download,
        ] {
            *url = credentials.take_from(url);
        }
        (self, credentials)
    }

    /// Every upstream pointed at one server (`<base>/node`, `<base>/go`, `<base>/github`, …),
    /// the layout of the loopback fixture server. npm, PyPI and crates.io keep their defaults.
    pub fn all_at(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            node: format!("{base}/node"),
            go: format!("{base}/go"),
            github_api: format!("{base}/github"),
            ..Self::default()
        }
    }
}

/// An HTTP error or an unusable answer from an upstream.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with a status that is not success (after retries for 5xx).
    #[error("{url}: HTTP {status}; {}", status_hint(*status))]
    Status {
        /// The URL requested.
        url: String,
        /// The final status code.
        status: u16,
    },
    /// Connection, TLS or timeout failure (after retries).
    #[error("{url}: {message}; check the network and the mirror settings")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Every attempt failed with a retryable error (5xx, 429, timeout, reset connection).
    #[error(
        "{url}: gave up after {attempts} attempts, last: {last}; the server may be down or overloaded, retry later or use a mirror"
    )]
    GaveUp {
        /// The URL requested.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        last: String,
    },
    /// The server refused because its API rate limit is used up (GitHub: 60 requests an hour
    /// without a token).
    #[error("{url}: the API rate limit is exhausted; set GITHUB_TOKEN (or MISE_GITHUB_TOKEN) to a token and retry")]
    RateLimited {
        /// The URL requested.
        url: String,
    },
    /// The answer is not what the URL should serve (e.g. a wheel that is not a zip file).
    #[error("{url}: {message}")]
    Malformed {
        /// The URL requested.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// `--offline` and the URL is not in the HTTP cache.
    #[error("{url} is not in the HTTP cache and --offline was given")]
    Offline {
        /// The URL requested.
        url: String,
    },
}

/// What to do about a final HTTP status.
fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => "not found: check the tool's name and version, and the mirror URL",
        401 | 403 => "access denied: check the token or the mirror's credentials",
        _ => "the server refused the request; retry later or use a mirror",
    }
}

/// How backends reach the network: cached, retried, bounded concurrency.
#[async_trait]
pub trait Fetch: Send + Sync {
    /// GET a URL and return the whole body (metadata: indexes, checksum files, API JSON).
    async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError>;
    /// GET a URL asking for the representation `accept` names (content negotiation, as PEP
    /// 691's JSON simple index is asked for); cached and shared apart from [`Fetch::get`] of
    /// the same URL. The default ignores `accept`.
    async fn get_accepting(&self, url: &str, _accept: &'static str) -> Result<bytes::Bytes, FetchError> {
        self.get(url).await
    }
    /// Download an artifact and return its sha256 (hex) and size, for upstreams that publish
    /// no checksum. Large bodies are streamed, not kept in memory.
    async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError>;
    /// The size of an artifact as its server announces it (`Content-Length` of a HEAD
    /// request), for upstreams whose checksum lists carry no sizes; `None` when the server
    /// does not say. The default knows no sizes.
    async fn size_of(&self, _url: &str) -> Result<Option<u64>, FetchError> {
        Ok(None)
    }
    /// The `*.dist-info/METADATA` file of the wheel at `url`. The default downloads the
    /// wheel with [`Fetch::get`]; the HTTP client reads only the parts of the zip it needs
    /// with range requests and caches the result.
    async fn wheel_metadata(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
        let wheel = self.get(url).await?;
        crate::http::lazy_zip::member_in(&wheel, crate::http::lazy_zip::is_wheel_metadata, WHEEL_METADATA)
            .map(bytes::Bytes::from)
            .map_err(|message| FetchError::Malformed { url: url.to_string(), message })
    }
    /// Waits for what the client still does after answering (the HTTP client writes its cache
    /// while the run goes on); call it before the runtime stops. The default has nothing to
    /// wait for.
    async fn finish(&self) {}
    /// Where parsed documents are shared for this run ([`documents::parsed`]); `None` (the
    /// default) parses on every call.
    fn documents(&self) -> Option<&documents::Documents> {
        None
    }
}

/// How a wheel's metadata file is named in messages.
pub const WHEEL_METADATA: &str = ".dist-info/METADATA";

/// Everything a backend needs besides the tool itself.
pub struct ResolveContext<'a> {
    /// Network access.
    pub fetch: &'a dyn Fetch,
    /// Base URLs.
    pub upstreams: &'a Upstreams,
    /// Platforms to lock, sorted.
    pub platforms: &'a [Platform],
    /// Other tools already locked in this run (name → version), e.g. the python a pipx tool
    /// runs on or the node an npm tool needs.
    pub runtimes: &'a BTreeMap<String, String>,
}

/// Why a tool could not be resolved or locked. The CLI adds the config origin.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Network or upstream failure.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// No published version satisfies the request.
    #[error("no version of {tool} matches `{request}`")]
    NoMatch {
        /// The tool.
        tool: String,
        /// The request as written.
        request: String,
        /// The closest existing versions, newest first, to suggest.
        nearest: Vec<String>,
    },
    /// The upstream answered something sbx cannot read.
    #[error("unexpected response from {url}: {message}")]
    Malformed {
        /// The URL whose body was malformed.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// No artifact for one of the target platforms.
    #[error("{tool} {version} has no artifact for {platform}: {detail}")]
    NoArtifact {
        /// The tool.
        tool: String,
        /// The resolved version.
        version: String,
        /// The platform without an artifact.
        platform: Platform,
        /// What was looked for (file name pattern, wheel tags, …).
        detail: String,
    },
    /// A Python release (a pipx tool or a package of its closure) runs only on newer Pythons
    /// than the one the image gets.
    #[error("{package} {version} requires Python {requires_python}; the image runs python {python}")]
    PythonTooOld {
        /// The package, with the closure it is in when it is not the tool itself.
        package: String,
        /// Its version.
        version: String,
        /// Its wheels' `Requires-Python`.
        requires_python: String,
        /// The image's Python.
        python: String,
        /// What to change.
        help: String,
    },
    /// A published checksum list lacks the artifact.
    #[error("{url} lists no checksum for {file}")]
    MissingChecksum {
        /// The checksum file's URL.
        url: String,
        /// The artifact file name.
        file: String,
    },
    /// The backend or request form cannot be locked yet.
    #[error("{0}")]
    Unsupported(String),
}

/// One tool source (`core:node`, `npm:`, `pipx:`, …).
#[async_trait]
pub trait Backend: Send + Sync {
    /// Every published version, in the upstream's order (newest last after sorting by the caller
    /// is not assumed: implementations return them sorted oldest → newest).
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError>;

    /// The exact version a request means, with mise's semantics.
    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError>;

    /// Pins one version for every platform in `ctx.platforms`: artifacts with checksums, or the
    /// whole dependency closure for npm/pipx. `request` is recorded as written.
    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError>;
}

/// Parses a JSON body, or says which URL answered something unreadable.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ResolveError> {
    serde_json::from_slice(body).map_err(|e| ResolveError::Malformed { url: url.to_string(), message: e.to_string() })
}

/// Reads a `sha256sum`-style list (`<hex>  <file>` or `<hex> *<file>` per line) into
/// file name → lowercase hex. Lines that are not of that form are skipped.
pub(crate) fn parse_checksum_list(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (hash, file) = line.trim().split_once(char::is_whitespace)?;
            let file = file.trim().trim_start_matches('*');
            let file = file.rsplit('/').next().unwrap_or(file);
            (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (file.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// A [`LockedTool`] with one artifact per platform (everything but npm/pipx).
pub(crate) fn locked_artifacts(
    tool: &BackendRef,
    request: &VersionRequest,
    version: &str,
    platforms: BTreeMap<Platform, crate::lockfile::Artifact>,
) -> LockedTool {
    LockedTool {
        backend: tool.to_string(),
        request: request.to_string(),
        version: version.to_string(),
        runtime: None,
        options: tool.options.clone(),
        platforms,
        packages: Vec::new(),
    }
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    #[test]
    fn env_overrides_upstreams() {
        let env: BTreeMap<&str, &str> = [
            ("MISE_NODE_MIRROR_URL", "https://mirror.example/node/"),
            ("SBX_GO_URL", "http://127.0.0.1:9/go"),
            ("SBX_GITHUB_API_URL", " "),
        ]
        .into_iter()
        .collect();
        let u = Upstreams::from_env_with(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(u.node, "https://mirror.example/node");
        assert_eq!(u.go, "http://127.0.0.1:9/go");
        assert_eq!(u.github_api, Upstreams::default().github_api);
        let sbx_wins = Upstreams::from_env_with(|k| match k {
            "MISE_NODE_MIRROR_URL" => Some("https://a".into()),
            "SBX_NODE_URL" => Some("https://b".into()),
            _ => None,
        });
        assert_eq!(sbx_wins.node, "https://b");
    }

    #[test]
    fn every_upstream_gives_up_its_credentials() {
        let secret = |name: &str| format!("https://user:{name}-secret@{name}.example/base");
        let u = Upstreams {
            node: secret("node"),
            go: secret("go"),
            github_api: secret("github"),
            npm: secret("npm"),
            pypi: secret("pypi"),
            crates_index: secret("index"),
            crates_download: secret("download"),
        };
        let (clean, credentials) = u.split_credentials();
        assert!(!format!("{clean:?} {credentials:?}").contains("secret"), "{clean:?} {credentials:?}");
        assert_eq!(clean.pypi, "https://pypi.example/base");
        for name in ["node", "go", "github", "npm", "pypi", "index", "download"] {
            let password = format!("{name}-secret");
            let url = format!("https://{name}.example/any/file");
            assert_eq!(credentials.for_url(&url), Some(("user", Some(password.as_str()))), "{name}");
        }
        let (plain, none) = Upstreams::default().split_credentials();
        assert_eq!((plain, none.is_empty()), (Upstreams::default(), true));
    }

    #[test]
    fn checksum_lists() {
        let hex = "ab".repeat(32);
        let text = format!("{hex}  a.tar.gz\n{hex} *dir/b.zip\nnot a line\n{}  short\n", "ab");
        let sums = parse_checksum_list(&text);
        assert_eq!(sums.len(), 2);
        assert_eq!(sums["a.tar.gz"], hex);
        assert_eq!(sums["b.zip"], hex);
    }
}
