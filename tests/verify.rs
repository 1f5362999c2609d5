//! End-to-end tests of sbx verify: image ↔ lockfile and host ↔ image parity.

mod support;
