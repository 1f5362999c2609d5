//! `sbx-mise` reads what mise reads and pins what `sbx lock` pins.
//!
//! It owns: mise config discovery and parsing with every value's origin ([`config`]), tool
//! names and their backends ([`tool_id`]), typed version requests ([`request`]), target
//! platforms ([`platform`]), version resolution ([`resolve`]) and the `sbx.lock` model
//! ([`lockfile`]). It knows nothing about images or sandboxes.

pub mod atomic;
pub mod config;
pub mod credentials;
pub mod diagnostic;
pub mod http;
pub mod lock;
pub mod lockfile;
pub mod origin;
pub mod platform;
pub mod request;
pub mod resolve;
pub mod suggest;
pub mod toml_source;
pub mod tool_id;

pub use diagnostic::ConfigError;
pub use origin::{Origin, SourceFile, Spanned};
pub use platform::Platform;
pub use request::VersionRequest;
pub use tool_id::{BackendKind, BackendRef, ToolId};
