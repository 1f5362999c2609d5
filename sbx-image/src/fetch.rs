//! Downloads locked artifacts into the content-addressed cache, verified while streaming.
//!
//! An artifact is stored at `downloads/<algo>/<hex>` only after its size and checksum match
//! the lockfile; bytes go to a temp file in the same directory, renamed at the end, so a
//! failed or concurrent run never leaves a partial entry. Each entry is produced under a file
//! lock, so two runs fetching the same artifact download it once. A cached entry is re-hashed
//! before use; a damaged one is reported through [`Progress::warn`] and downloaded again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt, TryStreamExt};
use sbx_mise::credentials::Credentials;
use sbx_mise::lockfile::model::{Artifact, Checksum};

use crate::cache::Cache;
use crate::digest::ContentHasher;
use crate::error::{ImageError, IoContext, Result};
use crate::progress::Progress;

/// Default number of downloads in flight.
pub const DEFAULT_PARALLEL_DOWNLOADS: usize = 4;

/// Fetches artifacts into a [`Cache`].
#[derive(Clone, Debug)]
pub struct Fetcher {
    cache: Cache,
    client: reqwest::Client,
    parallel: usize,
    credentials: Credentials,
}

impl Fetcher {
    /// A fetcher with a default HTTP client and [`DEFAULT_PARALLEL_DOWNLOADS`].
    pub fn new(cache: Cache) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("sbx/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { cache, client, parallel: DEFAULT_PARALLEL_DOWNLOADS, credentials: Credentials::default() }
    }

    /// Sends `credentials` (taken out of the upstream URLs, [`Credentials`]) with downloads
    /// from their origins: artifacts pinned from a private index.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets how many downloads run at once (at least one).
    pub fn with_parallelism(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self
    }

    /// The cache this fetcher fills.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Fetches every artifact (at most the configured number at once); paths in input order.
    pub async fn fetch_all(&self, artifacts: &[Artifact], progress: &dyn Progress) -> Result<Vec<PathBuf>> {
        stream::iter(artifacts.iter().map(|a| self.fetch(a, progress))).buffered(self.parallel).try_collect().await
    }

    /// Returns the verified cache path of `artifact`, downloading it if needed.
    pub async fn fetch(&self, artifact: &Artifact, progress: &dyn Progress) -> Result<PathBuf> {
        let path = self.cache.download_path(&artifact.checksum);
        let lock_name = format!("dl-{}-{}", artifact.checksum.algorithm(), artifact.checksum.hex());
        let cache = self.cache.clone();
        let _lock = tokio::task::spawn_blocking(move || cache.lock(&lock_name))
            .await
            .map_err(|e| ImageError::Io { path: path.clone(), source: std::io::Error::other(e) })??;
        if path.exists() {
            let (p, a) = (path.clone(), artifact.clone());
            let check = tokio::task::spawn_blocking(move || verify_file(&p, &a))
                .await
                .map_err(|e| ImageError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
            match check {
                Ok(()) => return Ok(path),
                Err(err) => {
                    progress.warn(&format!("cache entry {} was damaged ({err}); downloading it again", path.display()));
                    std::fs::remove_file(&path).at(&path)?;
                }
            }
        }
        progress.download_started(&artifact.url, artifact.size);
        let result = self.download(artifact, &path, progress).await;
        progress.download_finished(&artifact.url);
        result.map(|()| path)
    }

    async fn download(&self, artifact: &Artifact, dest: &Path, progress: &dyn Progress) -> Result<()> {
        let url = &artifact.url;
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".part-").tempfile_in(dir).at(dir)?;
        if let Some(local) = url.strip_prefix("file://") {
            return copy_local(artifact, Path::new(local), tmp, dest, progress);
        }
        let net = |source| ImageError::Download { url: url.clone(), source };
        let mut resp = self.credentials.authorize(self.client.get(url), url).send().await.map_err(net)?;
        if !resp.status().is_success() {
            return Err(ImageError::HttpStatus { url: url.clone(), status: resp.status().as_u16() });
        }
        let mut hasher = ContentHasher::for_checksum(&artifact.checksum);
        let mut received = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(net)? {
            received += chunk.len() as u64;
            if let Some(expected) = artifact.size
                && received > expected
            {
                return Err(ImageError::SizeMismatch { url: url.clone(), expected, actual: received });
            }
            hasher.update(&chunk);
            tmp.write_all(&chunk).at(tmp.path())?;
            progress.download_progress(url, chunk.len() as u64);
        }
        check(artifact, hasher.finish(), received)?;
        tmp.persist(dest).map_err(|e| ImageError::Io { path: dest.to_path_buf(), source: e.error })?;
        Ok(())
    }
}

/// `file://` artifacts (mirrors on disk, air-gapped setups, benchmarks): linked or copied through the
/// same verification as downloads.
fn copy_local(
    artifact: &Artifact,
    source: &Path,
    mut tmp: tempfile::NamedTempFile,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    // On the same filesystem the file is hard-linked instead of copied, then hashed. The cache
    // re-hashes an entry on every use, so a later change to the source shows up there as a
    // damaged entry (fetched again, then refused by its checksum), never as wrong bytes.
    let file_name = tmp.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let linked = tmp.path().with_file_name(format!(".part-link{}", file_name.trim_start_matches(".part-")));
    if std::fs::hard_link(source, &linked).is_ok() {
        let checked = verify_file(&linked, artifact);
        if let Err(err) = checked {
            let _ = std::fs::remove_file(&linked);
            return Err(err);
        }
        progress.download_progress(&artifact.url, std::fs::metadata(&linked).map(|m| m.len()).unwrap_or(0));
        return std::fs::rename(&linked, dest).at(dest);
    }
    let mut file = std::fs::File::open(source).at(source)?;
    let mut hasher = ContentHasher::for_checksum(&artifact.checksum);
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = file.read(&mut buf).at(source)?;
        if n == 0 {
            break;
        }
        received += n as u64;
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).at(tmp.path())?;
        progress.download_progress(&artifact.url, n as u64);
    }
    check(artifact, hasher.finish(), received)?;
    tmp.persist(dest).map_err(|e| ImageError::Io { path: dest.to_path_buf(), source: e.error })?;
    Ok(())
}

/// Compares what was received with what the lockfile pins.
fn check(artifact: &Artifact, actual: Checksum, received: u64) -> Result<()> {
    if let Some(expected) = artifact.size
        && expected != received
    {
        return Err(ImageError::SizeMismatch { url: artifact.url.clone(), expected, actual: received });
    }
    if actual != artifact.checksum {
        return Err(ImageError::ChecksumMismatch {
            url: artifact.url.clone(),
            expected: artifact.checksum.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Re-hashes a file on disk against the artifact's checksum and size.
pub fn verify_file(path: &Path, artifact: &Artifact) -> Result<()> {
    let mut file = std::fs::File::open(path).at(path)?;
    let mut hasher = ContentHasher::for_checksum(&artifact.checksum);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    check(artifact, hasher.finish(), total)
}
