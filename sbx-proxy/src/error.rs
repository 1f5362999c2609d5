//! Errors a caller of the proxy library can see.

use std::path::PathBuf;

/// Everything that can go wrong starting or configuring the proxy, or reading its audit log.
/// Per-connection failures never surface here: they close that connection and are logged.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProxyError {
    /// The embedded balanced baseline does not parse (a build defect).
    #[error("the balanced preset baseline (sbx-proxy/data/balanced.toml) is invalid: {0}")]
    #[diagnostic(code(sbx_proxy::baseline))]
    Baseline(String),

    /// A policy rule is invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rule(#[from] crate::policy::RuleError),

    /// A credential-injection rule is invalid.
    #[error("invalid credential injection for `{service}`: {reason}")]
    #[diagnostic(
        code(sbx_proxy::injection),
        help("check the service's entry under [secrets] in .sbx.toml: host, header, and the secret's source")
    )]
    Injection {
        /// The service name.
        service: String,
        /// What is wrong.
        reason: String,
    },

    /// A certificate could not be made or loaded.
    #[error("{what}: {reason}")]
    #[diagnostic(code(sbx_proxy::certificate))]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A TLS configuration could not be built.
    #[error("TLS {what}: {reason}")]
    #[diagnostic(code(sbx_proxy::tls))]
    Tls {
        /// Which configuration.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// The options are inconsistent.
    #[error("invalid proxy options: {0}")]
    #[diagnostic(code(sbx_proxy::options))]
    Options(String),

    /// A listener could not be opened.
    #[error("cannot listen on {address}")]
    #[diagnostic(
        code(sbx_proxy::listen),
        help("is another proxy for this sandbox still running? Stop it, or remove a stale socket file")
    )]
    Listen {
        /// The socket path or TCP address.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The audit log could not be opened, written or read.
    #[error("audit log {}", path.display())]
    #[diagnostic(code(sbx_proxy::audit), help("check that the sandbox state directory exists and is writable"))]
    Audit {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An internal lock was poisoned by a panic elsewhere.
    #[error("internal state poisoned by an earlier panic")]
    #[diagnostic(code(sbx_proxy::poisoned))]
    Poisoned,
}
