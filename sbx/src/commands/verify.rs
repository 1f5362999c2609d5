//! `sbx verify`: an image against `sbx.lock`, and the host's installs against the image (issue #5).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `sbx verify`.
pub fn run(_ctx: &Context, _args: &VerifyArgs) -> miette::Result<Exit> {
    Err(super::not_yet("verify", 5))
}
