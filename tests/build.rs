//! End-to-end tests of sbx build: reproducible OCI images checked with skopeo, umoci, a registry, docker and runc.

mod support;
