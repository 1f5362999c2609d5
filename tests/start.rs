//! End-to-end tests of sbx start and the sandbox lifecycle commands.

mod support;
