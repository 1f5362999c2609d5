//! PyPI support for the `pipx:` backend: a project's files from the index's simple API
//! ([`simple`], into the model of [`project`]), a release's `Requires-Dist` from its wheel's
//! METADATA ([`metadata`]), the target interpreter and platform with its wheel tags and markers
//! ([`target`]), and wheel-only dependency resolution ([`resolver`]).

pub mod metadata;
pub mod project;
pub mod resolver;
pub mod simple;
pub mod target;
