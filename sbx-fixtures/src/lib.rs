//! Test fixtures shared by the workspace's tests, benches and `cargo xtask example`: a loopback
//! HTTP server for recorded upstreams, small OCI base layouts ([`images`]) and a real
//! `docker-registry` ([`registry`]).
//!
//! The server is what makes `sbx lock` testable without GitHub or nodejs.org.
//!
//! It serves the recorded, format-true upstream responses in `fixtures/upstream/` (the node
//! distribution index and `SHASUMS256.txt`, the Go download index, GitHub releases API JSON
//! for python-build-standalone and `github:` tools) together with small but real artifacts
//! whose checksums those files list. `{{base}}` inside a text response is replaced by the
//! server's own base URL, so recorded download links point back at the server.
//!
//! URL layout (see [`FixtureServer::base_url`]): `/node/…` (node dist mirror), `/go/`
//! (Go index), `/github/repos/…` (GitHub REST API), `/github.com/…` (release downloads).
//!
//! Tests can inject faults per path with [`FixtureServer::fault`]: error statuses a number of
//! times, a replaced body (malformed JSON, a checksum list missing a line), or a delay.
//! The server binds 127.0.0.1 on an ephemeral port only and stops when dropped.

pub mod generate;
pub mod images;
pub mod registry;
mod server;
pub mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use server::FixtureServer;

/// A fault injected for one URL path (query ignored).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `status` (with an empty body) to the next `times` requests, then serve normally.
    Status {
        /// The status to answer.
        status: u16,
        /// How many requests get it.
        times: u32,
    },
    /// Serve these bytes instead of the recorded file (malformed JSON, an edited checksum list).
    Body(Vec<u8>),
    /// Wait this long before answering (to exercise client timeouts).
    Delay(Duration),
    /// Always answer exactly this (e.g. a 403 with `x-ratelimit-remaining: 0`).
    Response {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
}

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The URL path (without query).
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// Shared state between the server task and the test.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) faults: HashMap<String, Fault>,
    pub(crate) hits: Vec<Hit>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// `fixtures/projects/recorded-upstreams/mise.toml`: one tool per backend the server records
/// (node twice, go, python, `github:`, `ubi:`), for the lock tests and `cargo xtask bench lock`.
pub const RECORDED_MISE_TOML: &str = include_str!("../../fixtures/projects/recorded-upstreams/mise.toml");

/// What [`RECORDED_MISE_TOML`] locks to against the recorded upstreams, as `tool@version` in
/// lockfile order.
pub const RECORDED_LOCKED_VERSIONS: [&str; 6] = [
    "github:cli/cli@2.62.0",
    "go@1.23.3",
    "node@22.11.0",
    "node@20.18.0",
    "python@3.12.7",
    "ubi:BurntSushi/ripgrep@14.1.1",
];

/// `fixtures/upstream/` of this repository.
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures").join("upstream")
}
