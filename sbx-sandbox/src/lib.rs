//! `sbx-sandbox` runs an agent inside an isolation boundary.
//!
//! It will own: the runtimes behind one trait (gvisor, bwrap, docker, podman, docker-sbx),
//! the rootfs cache keyed by image digest, mounts, the environment built from nothing, the
//! relay from the sandbox's loopback to the egress proxy's socket, and the sandbox lifecycle.
//!
//! It never builds images: its only input is an image digest produced by `sbx build`.
