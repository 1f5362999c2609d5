//! `sbx-proxy` is the egress policy proxy every sandbox talks through.
//!
//! Inside a sandbox there is no route anywhere; the only way out is this proxy. It is an
//! HTTP/1.1 forward proxy (`CONNECT` tunnels and absolute-URI plain HTTP) listening on a Unix
//! socket and optionally on a loopback TCP port, and it
//!
//! * enforces the network [policy](policy): presets, `allowed_domains` / `blocked_domains`
//!   (exact, `*.suffix`, optional `:port`; deny beats allow) and CIDR rules;
//! * resolves names itself and connects only to an address it checked, refusing loopback,
//!   private, link-local (cloud metadata), CGNAT, multicast and similar addresses unless a CIDR
//!   rule allows them (so DNS rebinding gets nowhere);
//! * reads the TLS ClientHello of each tunnel: an SNI different from the `CONNECT` host is
//!   refused (domain fronting), and TLS ports carry only TLS unless a `tcp://` rule says so;
//! * injects credentials: for hosts with an [`InjectionRule`] only, it terminates TLS with a
//!   per-sandbox CA and swaps a sentinel for the real secret, re-encrypting upstream with normal
//!   verification;
//! * answers refusals with a `403` whose text names the rule and the `.sbx.toml` line that
//!   would allow the request;
//! * writes one JSON line per decision to the [audit log](audit).
//!
//! Start it with [`Proxy::start`]; show a policy with [`render_policy`]; read the log with
//! [`AuditReader`].

mod addr;
pub mod audit;
mod ca;
mod clienthello;
mod error;
mod gate;
mod http;
mod inject;
mod intercept;
mod io;
pub mod policy;
mod refusal;
mod resolve;
mod server;
pub mod services;
mod splice;
mod target;
mod tunnel;
mod upstream;

pub use addr::{SpecialRange, classify};
pub use audit::{AuditEntry, AuditReader, Decision, audit_log_path, read_audit_log};
pub use ca::{CertificateAuthority, UpstreamRoots};
pub use clienthello::{FirstFlight, parse_first_flight};
pub use error::ProxyError;
pub use inject::InjectionRule;
pub use policy::{CidrRule, DomainRule, PolicyConfig, Preset, render_policy};
pub use refusal::{Fix, Refusal};
pub use resolve::{Resolve, ResolveFuture, StaticResolver, SystemResolver};
pub use server::{Limits, Proxy, ProxyHandle, ProxyOptions};
pub use services::{SERVICES, Service, sentinel};
pub use target::{Host, Target, TargetError};
