//! `sbx-sandbox` runs an agent inside an isolation boundary.
//!
//! * [`RootfsCache`] unpacks an OCI image layout once per manifest digest (whiteouts applied,
//!   path escapes refused, temp dir + rename under a file lock).
//! * [`Runtime`] has one implementation per file: [`runtime::Gvisor`] (runsc, a user-space kernel)
//!   and [`runtime::Bwrap`] (namespaces + a seccomp filter generated in [`seccomp`]);
//!   [`runtime::select`] picks one (`auto` = strongest that works), [`runtime::doctor`] explains.
//! * [`SandboxSpec`] → [`LaunchPlan`]: mounts (project rw at its own path, extras ro unless
//!   marked), an environment built from nothing ([`env`]), the in-sandbox helper (`sbx-init`,
//!   embedded, statically linked) that relays `127.0.0.1:3128` to the proxy's Unix socket.
//! * [`Sandboxes`] is the lifecycle API: start attached (PTY, signals, exit code) or detached,
//!   exec, list, stop, remove; metadata under the state dir (`$SBX_STATE_DIR`).
//!
//! It never builds images: its only input is an OCI layout produced by `sbx build`.

pub mod docker_sbx;
pub mod env;
pub mod error;
pub mod helper;
pub mod lifecycle;
pub mod oci;
pub mod pty;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
mod signals;
pub mod spec;
pub mod state;
mod unpack;

pub use error::{Error, Result};
pub use lifecycle::{Event, Outcome, SandboxInfo, Sandboxes};
pub use rootfs::{PreparedRootfs, RootfsCache};
pub use runtime::{Runtime, RuntimeChoice, RuntimeKind};
pub use spec::{ExtraWorkspace, HomeMount, LaunchPlan, SandboxSpec};
