//! `sbx.lock`: the only hand-off between `sbx lock` and `sbx build`.
//!
//! [`model`] holds the typed content. The file format (TOML written with toml_edit, stable order)
//! is documented in the README's lockfile section.

pub mod diff;
pub mod format;
pub mod mise_lock;
pub mod model;

pub use format::{from_toml, to_toml};
pub use model::{Artifact, Checksum, LockedBase, LockedPackage, LockedTool, Lockfile};
