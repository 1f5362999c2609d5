//! Progress reporting: the library calls these hooks, the CLI draws bars (indicatif).

/// Receives progress events. Every method has an empty default; implementations must be cheap.
///
/// Download events carry the URL as an id; bytes are deltas, so a renderer can show bytes,
/// rate and ETA from `download_started`'s total.
pub trait Progress: Send + Sync {
    /// A download begins; `total` is the expected size when the lockfile knows it.
    fn download_started(&self, _url: &str, _total: Option<u64>) {}
    /// `bytes` more bytes of `url` arrived.
    fn download_progress(&self, _url: &str, _bytes: u64) {}
    /// The download of `url` finished (successfully or not).
    fn download_finished(&self, _url: &str) {}
    /// A layer for `name` (e.g. `node 22.11.0 linux/amd64`) starts being built.
    fn layer_started(&self, _name: &str) {}
    /// The layer for `name` is ready; `cached` when it came from the layer cache.
    fn layer_finished(&self, _name: &str, _cached: bool) {}
    /// A blob was pushed to a registry (`uploaded == false`: the registry already had it).
    fn blob_pushed(&self, _digest: &str, _size: u64, _uploaded: bool) {}
    /// Something worth telling the user that is not an error (e.g. a damaged cache entry replaced).
    fn warn(&self, _message: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
