//! End-to-end tests of Runtimes on existing engines: Docker Sandboxes (stand-in CLI), docker and podman.

mod support;
