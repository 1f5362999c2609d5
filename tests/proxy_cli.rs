//! End-to-end tests of sbx proxy and sbx policy: the proxy driven from .sbx.toml.

mod support;
