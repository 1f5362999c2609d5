//! `sbx-image` turns a locked toolchain into an OCI image, without a daemon.
//!
//! Pipeline: [`fetch`] (content-addressed, verified download cache) → [`extract`] (safe
//! unpacking) → [`install`] (mise's install layout) → [`layer`] (deterministic tar, one-pass
//! diff_id + digest) → [`oci`] (config, manifest, index as canonical JSON) → [`output`] (OCI
//! layout and docker-archive writers). [`build`] drives it all from a [`Lockfile`]; [`treehash`]
//! is the parity digest `sbx verify` compares.
//!
//! It never resolves versions: its only input is `sbx.lock` (see `sbx-mise`).
//!
//! ```no_run
//! # async fn build(lock: sbx_image::Lockfile) -> miette::Result<()> {
//! use std::path::Path;
//! let opts = sbx_image::BuildOptions::new(sbx_image::Cache::from_env()?);
//! let out = sbx_image::build_image(&lock, &opts, &sbx_image::NoProgress).await?;
//! sbx_image::output::write_oci_layout(&out, Path::new(".sbx/image"), "latest")?;
//! println!("{}", out.index_digest);
//! # Ok(()) }
//! ```

pub mod base;
pub mod build;
pub mod cache;
pub mod digest;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod file_range;
pub mod install;
pub mod layer;
pub mod layout_gc;
pub mod npm;
mod npm_native;
pub mod oci;
pub mod output;
pub mod pipx;
pub mod progress;
pub mod registry;
mod tool_layer;
pub mod treehash;
pub mod users;
pub mod verify;

pub use build::{BuildOptions, BuildOutput, LayerInfo, PlatformImage, build_image};
pub use cache::Cache;
pub use error::{ImageError, Result};
pub use layer::Compression;
pub use progress::{NoProgress, Progress};
pub use sbx_mise::lockfile::model::Lockfile;
pub use treehash::tree_hash_dir;
