//! `sbx-image` turns a locked toolchain into an OCI image, without a daemon.
//!
//! It will own: the content-addressed fetch cache, archive extraction, the mise install
//! layout inside the image, deterministic layer writing (sorted tar, fixed headers, one-pass
//! diff_id + digest), OCI config/manifest/index, the OCI layout and docker-archive writers,
//! the registry client, and the parity tree hash.
//!
//! It never resolves versions: its only input is `sbx.lock` (see `sbx-mise`).
