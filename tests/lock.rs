//! End-to-end tests of sbx lock against the loopback fixture server and the live npm registry / PyPI.

mod support;
