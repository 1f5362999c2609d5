//! `sbx-proxy` is the egress policy proxy every sandbox talks through.
//!
//! It will own: the network policy (presets, domain and CIDR rules), DNS resolution with
//! address checks, CONNECT and plain-HTTP forwarding, the TLS SNI check, credential
//! injection, and the audit log. It knows nothing about runtimes.
