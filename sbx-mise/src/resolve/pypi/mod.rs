//! PyPI support for the `pipx:` backend: the JSON API ([`project`]), the target interpreter
//! and platform with its wheel tags and markers ([`target`]), and wheel-only dependency
//! resolution ([`resolver`]).

pub mod project;
pub mod resolver;
pub mod target;
