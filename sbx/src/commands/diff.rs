//! `sbx diff OLD NEW`: what changed between two lockfiles, for reviews and PR comments.
//!
//! Each side is a lockfile path, or a git revision with a path (`HEAD~1:sbx.lock`), or a bare
//! revision (`main` means `main:sbx.lock`), or an image (`oci:DIR`, an OCI layout directory,
//! `docker://REF`), read through its annotations (`sbx_image::verify::view`). Without
//! arguments: `HEAD:sbx.lock` against the working copy. With an image on one side only tools,
//! versions, Linux platforms and base digests are compared (an image records no downloads);
//! two images compare by installed content too.

use std::path::Path;
use std::process::Command;

use sbx_mise::SourceFile;
use sbx_mise::lockfile::diff::{DiffOptions, diff_with};
use sbx_mise::lockfile::{self, Lockfile};

use crate::cli::{DiffArgs, DiffFormat};
use crate::diff_render::{render_markdown, render_text};
use crate::output::Output;
use crate::project::Project;

/// Runs `sbx diff`.
pub fn run(project: &Project, args: &DiffArgs, out: Output) -> miette::Result<()> {
    let old_spec = args.old.clone().unwrap_or_else(|| "HEAD".to_string());
    let new_spec = args.new.clone().unwrap_or_else(|| project.lockfile_path().display().to_string());
    let (old, old_image) = load_side(project, &old_spec)?;
    let (new, new_image) = load_side(project, &new_spec)?;
    let changes = diff_with(&old, &new, DiffOptions { artifacts: old_image == new_image });
    let text = match args.format {
        DiffFormat::Text if changes.is_empty() => format!("no changes between {old_spec} and {new_spec}\n"),
        DiffFormat::Text => format!("{old_spec} → {new_spec}\n{}", render_text(&changes, out)),
        DiffFormat::Markdown => render_markdown(&changes, &old_spec, &new_spec),
    };
    super::verify::write_stdout(&text)?;
    Ok(())
}

/// Reads one side: an image's lock view, a file, `REV:PATH` from git, or a bare `REV` (its
/// `sbx.lock`). Also says whether it was an image.
fn load_side(project: &Project, spec: &str) -> miette::Result<(Lockfile, bool)> {
    if super::verify::is_image_arg(spec, &project.root) {
        let image = super::verify::load_image(&project.root, project, Some(spec))?;
        return Ok((sbx_image::verify::view::lock_view(&image), true));
    }
    load_lockfile(project, spec).map(|l| (l, false))
}

fn load_lockfile(project: &Project, spec: &str) -> miette::Result<Lockfile> {
    let as_path = Path::new(spec);
    let path = if as_path.is_absolute() { as_path.to_path_buf() } else { project.root.join(as_path) };
    if path.is_file() {
        let text =
            std::fs::read_to_string(&path).map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))?;
        return Ok(lockfile::from_toml(SourceFile::new(path, text))?);
    }
    let (rev, file) = match spec.split_once(':') {
        Some((rev, file)) => (rev.to_string(), file.to_string()),
        None => (spec.to_string(), "sbx.lock".to_string()),
    };
    let output = Command::new("git")
        .arg("-C")
        .arg(&project.root)
        .arg("show")
        .arg(format!("{rev}:{}", git_path(&file)))
        .output()
        .map_err(|e| miette::miette!(help = "install git, or pass lockfile paths", "cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(miette::miette!(
            help = "pass a lockfile path, `REV:PATH` (e.g. HEAD~1:sbx.lock) or a revision",
            "`{spec}` is neither a file nor a lockfile in git: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|_| miette::miette!("{spec} is not UTF-8 text"))?;
    Ok(lockfile::from_toml(SourceFile::new(format!("{rev}:{file}"), text))?)
}

/// `git show REV:./x` resolves `x` relative to `-C`'s directory.
fn git_path(file: &str) -> String {
    if file.starts_with("./") || file.starts_with('/') { file.to_string() } else { format!("./{file}") }
}
