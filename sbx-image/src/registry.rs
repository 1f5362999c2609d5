//! Pushing a built image to a registry (OCI distribution spec): blobs first (HEAD to skip
//! those already there, then a monolithic POST + PUT upload), platform manifests by digest,
//! the index last under the tag. Credentials come from the user's docker config
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths.<host>.auth`), used as
//! basic auth or to obtain a bearer token. Plain HTTP is used only for loopback registries.

use std::path::PathBuf;
use std::sync::Mutex;

use reqwest::{Method, StatusCode};

use crate::build::BuildOutput;
use crate::error::{IoContext, RegistryError, Result};
use crate::oci::{MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::progress::Progress;

/// `registry/repository[:tag][@digest]`, parsed the way docker does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
}

impl Reference {
    /// Parses `host[:port]/path[:tag]`; a name without a registry host means Docker Hub.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.split('@').next()?;
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => (&s[..i], Some(s[i + 1..].to_string())),
            _ => (s, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
                (host.to_string(), rest.to_string())
            }
            Some(_) => ("registry-1.docker.io".to_string(), name.to_string()),
            None => ("registry-1.docker.io".to_string(), format!("library/{name}")),
        };
        (!repository.is_empty()).then_some(Self { registry, repository, tag })
    }

    /// Whether the registry is on this machine (the only case where plain HTTP is used).
    pub fn is_loopback(&self) -> bool {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(h, _)| h);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

/// Where a blob's bytes come from when pushing.
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// In memory (configs).
    Bytes(Vec<u8>),
    /// A file, streamed (layers).
    File(PathBuf),
}

/// A client for one repository.
pub struct Registry {
    reference: Reference,
    base: String,
    client: reqwest::Client,
    basic: Option<String>,
    token: Mutex<Option<String>>,
}

fn docker_config_auth(registry: &str) -> Option<String> {
    let dir =
        std::env::var_os("DOCKER_CONFIG").map(PathBuf::from).or_else(|| dirs::home_dir().map(|h| h.join(".docker")))?;
    let bytes = std::fs::read(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let keys = [registry.to_string(), format!("https://{registry}"), format!("http://{registry}")];
    let hub = registry == "registry-1.docker.io";
    auths
        .iter()
        .find(|(k, _)| keys.contains(k) || (hub && k.contains("index.docker.io")))
        .and_then(|(_, v)| v.get("auth")?.as_str().map(str::to_string))
}

impl Registry {
    /// A client for `reference`'s repository, with credentials from the docker config.
    pub fn new(reference: Reference) -> Self {
        let scheme = if reference.is_loopback() { "http" } else { "https" };
        let base = format!("{scheme}://{}/v2/{}", reference.registry, reference.repository);
        let basic = docker_config_auth(&reference.registry);
        let client = reqwest::Client::builder()
            .user_agent(concat!("sbx/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { reference, base, client, basic, token: Mutex::new(None) }
    }

    fn err(&self, url: &str, message: impl Into<String>, help: &str) -> RegistryError {
        RegistryError { url: url.to_string(), message: message.into(), help: help.to_string() }
    }

    /// Sends a request, answering one authentication challenge if the registry asks.
    async fn send(&self, method: Method, url: &str, body: Option<(Vec<u8>, &str)>) -> Result<reqwest::Response> {
        for attempt in 0..2 {
            let mut req = self.client.request(method.clone(), url);
            if let Some((bytes, ct)) = &body {
                req = req.header("Content-Type", *ct).body(bytes.clone());
            }
            req = self.with_auth(req);
            let resp =
                req.send().await.map_err(|e| self.err(url, e.to_string(), "check that the registry is reachable"))?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(resp);
            }
            let challenge =
                resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            self.authenticate(url, &challenge).await?;
        }
        Err(self.err(url, "authentication failed", "run `docker login` for this registry").into())
    }

    /// Adds the bearer token obtained so far, else the basic credentials, if any.
    fn with_auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let token = self.token.lock().map(|t| t.clone()).unwrap_or(None);
        match (token, &self.basic) {
            (Some(t), _) => req.bearer_auth(t),
            (None, Some(b)) => req.header("Authorization", format!("Basic {b}")),
            (None, None) => req,
        }
    }

    async fn authenticate(&self, url: &str, challenge: &str) -> Result<()> {
        let login = "run `docker login` for this registry (sbx reads ~/.docker/config.json)";
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            if self.basic.is_none() {
                return Err(self.err(url, "the registry requires credentials", login).into());
            }
            return Err(self.err(url, "the registry rejected the credentials", login).into());
        };
        let field = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = field("realm").ok_or_else(|| self.err(url, "bearer challenge without realm", login))?;
        let token_url = reqwest::Url::parse_with_params(
            &realm,
            &[
                ("service", field("service").unwrap_or_default()),
                (
                    "scope",
                    field("scope").unwrap_or_else(|| format!("repository:{}:pull,push", self.reference.repository)),
                ),
            ],
        )
        .map_err(|e| self.err(&realm, format!("invalid token realm: {e}"), login))?;
        let mut req = self.client.get(token_url);
        if let Some(b) = &self.basic {
            req = req.header("Authorization", format!("Basic {b}"));
        }
        let resp = req.send().await.map_err(|e| self.err(&realm, e.to_string(), login))?;
        if !resp.status().is_success() {
            return Err(self
                .err(&realm, format!("token request answered HTTP {}", resp.status().as_u16()), login)
                .into());
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| self.err(&realm, e.to_string(), login))?;
        let token = body.get("token").or_else(|| body.get("access_token")).and_then(|t| t.as_str());
        let token = token.ok_or_else(|| self.err(&realm, "token response without a token", login))?;
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(token.to_string());
        }
        Ok(())
    }

    async fn ensure_success(&self, resp: reqwest::Response, url: &str, what: &str) -> Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let help = if status == 401 || status == 403 {
            "run `docker login` for this registry and check push rights"
        } else {
            "retry; if it persists check the registry's logs"
        };
        Err(self.err(url, format!("{what} answered HTTP {status}: {}", text.trim()), help).into())
    }

    /// Uploads a blob unless the registry already has it.
    pub async fn push_blob(&self, digest: &str, blob: BlobSource) -> Result<bool> {
        let url = format!("{}/blobs/{digest}", self.base);
        if self.send(Method::HEAD, &url, None).await?.status().is_success() {
            return Ok(false);
        }
        let start = format!("{}/blobs/uploads/", self.base);
        let resp = self.send(Method::POST, &start, None).await?;
        let resp = self.ensure_success(resp, &start, "starting the upload").await?;
        let location =
            resp.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                self.err(&start, "upload without a Location header", "the registry is not OCI-compliant")
            })?;
        let mut put = if location.starts_with("http") {
            location.to_string()
        } else {
            let origin = self.base.split("/v2/").next().unwrap_or_default();
            format!("{origin}{location}")
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={digest}"));
        let resp = match blob {
            BlobSource::Bytes(bytes) => self.send(Method::PUT, &put, Some((bytes, "application/octet-stream"))).await?,
            BlobSource::File(path) => {
                // Streamed from disk; authentication already happened on HEAD/POST.
                let file = tokio::fs::File::open(&path).await.at(&path)?;
                let len = file.metadata().await.at(&path)?.len();
                let body = reqwest::Body::wrap_stream(futures::stream::unfold(file, |mut f| async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 1 << 20];
                    match f.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok::<_, std::io::Error>(buf), f))
                        }
                        Err(e) => Some((Err(e), f)),
                    }
                }));
                let req = self
                    .with_auth(self.client.put(&put))
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", len)
                    .body(body);
                req.send().await.map_err(|e| self.err(&put, e.to_string(), "check that the registry is reachable"))?
            }
        };
        self.ensure_success(resp, &put, "the blob upload").await?;
        Ok(true)
    }

    /// Puts a manifest or index under `reference` (a digest or a tag).
    pub async fn push_manifest(&self, reference: &str, bytes: Vec<u8>, media_type: &str) -> Result<()> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.send(Method::PUT, &url, Some((bytes, media_type))).await?;
        self.ensure_success(resp, &url, "the manifest upload").await?;
        Ok(())
    }
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Registry {
    /// Fetches a manifest or blob (`kind` = `manifests` or `blobs`) by digest, checking that
    /// the bytes hash to it (used by `sbx verify`).
    pub async fn fetch_verified(&self, kind: &str, digest: &str) -> Result<Vec<u8>> {
        self.get_verified(kind, digest).await
    }

    /// Fetches the manifest or index `tag` points at, with the digest of the bytes received.
    pub async fn fetch_tagged(&self, tag: &str) -> Result<(Vec<u8>, String)> {
        let url = format!("{}/manifests/{tag}", self.base);
        let resp = self.send_accept(&url).await?;
        let resp = self.ensure_success(resp, &url, "the download").await?;
        let bytes = resp.bytes().await.map_err(|e| self.err(&url, e.to_string(), "retry"))?;
        let digest = crate::digest::sha256_digest(&bytes);
        Ok((bytes.to_vec(), digest))
    }

    /// Fetches a blob or manifest and checks it hashes to `digest`.
    async fn get_verified(&self, kind: &str, digest: &str) -> Result<Vec<u8>> {
        let url = format!("{}/{kind}/{digest}", self.base);
        let mut resp = self.send_accept(&url).await?;
        resp = self.ensure_success(resp, &url, "the download").await?;
        let bytes = resp.bytes().await.map_err(|e| self.err(&url, e.to_string(), "retry the build"))?;
        let actual = crate::digest::sha256_digest(&bytes);
        if actual != digest {
            return Err(self
                .err(
                    &url,
                    format!("content hashes to {actual}, not {digest}"),
                    "the registry served other bytes; check the mirror",
                )
                .into());
        }
        Ok(bytes.to_vec())
    }

    async fn send_accept(&self, url: &str) -> Result<reqwest::Response> {
        for attempt in 0..2 {
            let mut req = self.client.get(url).header("Accept", ACCEPT);
            req = self.with_auth(req);
            let resp =
                req.send().await.map_err(|e| self.err(url, e.to_string(), "check that the registry is reachable"))?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(resp);
            }
            let challenge =
                resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            self.authenticate(url, &challenge).await?;
        }
        Err(self.err(url, "authentication failed", "run `docker login` for this registry").into())
    }
}

/// Pulls the base image `reference` for `platform` by the digests the lockfile pins
/// (`index_digest`, and `manifest_digest` for the platform), storing its blobs in `cache`.
/// Layers are kept byte for byte (docker media types are renamed to their OCI equivalents).
pub async fn pull_base(
    reference: &str,
    platform: sbx_mise::Platform,
    index_digest: &str,
    manifest_digest: Option<&str>,
    cache: &crate::cache::Cache,
) -> Result<crate::base::BaseImage> {
    use crate::oci::Descriptor;
    use serde_json::Value;
    let parsed = Reference::parse(reference).ok_or_else(|| RegistryError {
        url: reference.to_string(),
        message: "not a valid image reference".into(),
        help: "set [image] base to HOST[:PORT]/REPOSITORY[:TAG], `oci-layout:PATH` or `scratch`".into(),
    })?;
    let registry = Registry::new(parsed);
    let json = |bytes: &[u8], what: &str| -> Result<Value> {
        serde_json::from_slice(bytes).map_err(|e| {
            registry.err(reference, format!("{what} is not JSON: {e}"), "the registry served a damaged document").into()
        })
    };
    let digest = match manifest_digest {
        Some(d) => d.to_string(),
        None => {
            let top = json(&registry.get_verified("manifests", index_digest).await?, "the index")?;
            match top.get("manifests").and_then(Value::as_array) {
                None => index_digest.to_string(),
                Some(items) => items
                    .iter()
                    .filter_map(Descriptor::from_json)
                    .find(|d| d.platform == Some(platform))
                    .map(|d| d.digest)
                    .ok_or_else(|| {
                        registry.err(
                            reference,
                            format!("no image for {platform}"),
                            "pick a base that supports this platform",
                        )
                    })?,
            }
        }
    };
    let manifest = json(&registry.get_verified("manifests", &digest).await?, "the manifest")?;
    let config_desc = manifest
        .get("config")
        .and_then(Descriptor::from_json)
        .ok_or_else(|| registry.err(reference, "manifest without config", "the base is not an image manifest"))?;
    let config = json(&registry.get_verified("blobs", &config_desc.digest).await?, "the config")?;
    let blobs_dir = cache.root().join("blobs").join("sha256");
    let mut layers = Vec::new();
    for layer in manifest.get("layers").and_then(Value::as_array).into_iter().flatten() {
        let mut desc = Descriptor::from_json(layer)
            .ok_or_else(|| registry.err(reference, "malformed layer descriptor", "the base manifest is damaged"))?;
        let path = cache.blob_path(&desc.digest);
        if !path.is_file() {
            let bytes = registry.get_verified("blobs", &desc.digest).await?;
            crate::cache::write_atomic(&path, &bytes)?;
        }
        if desc.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip" {
            desc.media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        }
        layers.push(desc);
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    Ok(crate::base::BaseImage {
        reference: reference.to_string(),
        manifest_digest: digest,
        layers,
        diff_ids: strings(config.pointer("/rootfs/diff_ids")),
        history: config.get("history").and_then(Value::as_array).cloned().unwrap_or_default(),
        env: strings(config.pointer("/config/Env")),
        blobs_dir,
    })
}

/// Pushes every platform image and the index of `output` to `reference` (tag `latest` when
/// none is given). Returns the pushed index digest.
pub async fn push(output: &BuildOutput, reference: &str, progress: &dyn Progress) -> Result<String> {
    let parsed = Reference::parse(reference).ok_or_else(|| RegistryError {
        url: reference.to_string(),
        message: "not a valid image reference".into(),
        help: "use HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/sbx/project:latest".into(),
    })?;
    let tag = parsed.tag.clone().unwrap_or_else(|| "latest".into());
    let registry = Registry::new(parsed);
    for image in &output.images {
        for layer in &image.layers {
            let uploaded = registry.push_blob(&layer.blob.digest, BlobSource::File(layer.path.clone())).await?;
            progress.blob_pushed(&layer.blob.digest, layer.blob.size, uploaded);
        }
        let uploaded = registry.push_blob(&image.config_digest, BlobSource::Bytes(image.config_json.clone())).await?;
        progress.blob_pushed(&image.config_digest, image.config_json.len() as u64, uploaded);
        registry.push_manifest(&image.manifest_digest, image.manifest_json.clone(), MEDIA_TYPE_MANIFEST).await?;
    }
    registry.push_manifest(&tag, output.index_json.clone(), MEDIA_TYPE_INDEX).await?;
    Ok(output.index_digest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/sbx/p:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "sbx/p", Some("v1"))
        );
        assert!(r.is_loopback());
        let h = Reference::parse("debian").unwrap();
        assert_eq!(
            (h.registry.as_str(), h.repository.as_str(), h.tag.as_deref()),
            ("registry-1.docker.io", "library/debian", None)
        );
        assert!(!h.is_loopback());
        let l = Reference::parse("localhost:5000/x").unwrap();
        assert!(l.is_loopback() && l.tag.is_none());
        assert_eq!(Reference::parse("ghcr.io/a/b:1").unwrap().registry, "ghcr.io");
    }
}
