//! `sbx verify [IMAGE] [--host] [--json]`: an image against `sbx.lock`, and with `--host` the
//! host's mise installs against the image (issue #5). Exit 0 only when everything matches.
//!
//! The checks live in `sbx_image::verify`; this module picks the image, runs them and renders
//! the result: problems first, then what matched.

use std::path::Path;

use clap::Args;
use sbx_image::verify::{
    self, FileReason, HostReport, HostStatus, ImageArg, ImageReport, OciImage, Severity, host::host_data_dir,
};
use sbx_mise::lockfile::{self, Lockfile};
use sbx_mise::{Platform, SourceFile};

use super::{Context, Exit};
use crate::output::Output;
use crate::project::Project;

/// Arguments of `sbx verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: `oci:DIR[:TAG]` (an OCI image layout), or a registry reference
    /// (`HOST[:PORT]/REPO[:TAG]`, optionally `docker://…`). Default: the project's image in
    /// .sbx/image, as `sbx build` writes it.
    pub image: Option<String>,
    /// Also compare the host's mise installs of the locked tools (MISE_DATA_DIR, else
    /// $XDG_DATA_HOME/mise, else ~/.local/share/mise) with the image's layers for the host's
    /// platform, file by file.
    #[arg(long)]
    pub host: bool,
    /// Print one JSON document (for CI) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sbx verify`.
pub fn run(ctx: &Context, args: &VerifyArgs) -> miette::Result<Exit> {
    let project = ctx.project()?;
    let (lock, bytes) = read_lock(&project)?;
    let image = load_image(&ctx.dir, &project, args.image.as_deref())?;
    let report = verify::verify_image(&image, &lock, &verify::lockfile_digests(&lock, Some(&bytes)));
    let host = if args.host { Some(host_report(ctx, &lock, &image, &report)?) } else { None };
    let ok = report.ok() && host.as_ref().is_none_or(HostReport::ok);
    let text = if args.json {
        let doc = serde_json::json!({ "ok": ok, "image": report, "host": host });
        serde_json::to_string_pretty(&doc).map_err(|e| miette::miette!("cannot write JSON: {e}"))? + "\n"
    } else {
        let mut text = render_image(&report, &image, ctx.out);
        if let Some(host) = &host {
            text += &render_host(host, ctx.out);
        }
        let verdict = if ok {
            ctx.out.paint("32", "verified: everything matches")
        } else {
            ctx.out.paint("1;31", "verification failed")
        };
        text + &verdict + "\n"
    };
    write_stdout(&text)?;
    Ok(if ok { Exit::Success } else { Exit::Code(1) })
}

/// Writes to stdout; a closed pipe (`sbx verify | head`) is not an error.
pub fn write_stdout(text: &str) -> miette::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(miette::miette!("cannot write to stdout: {e}")),
        _ => Ok(()),
    }
}

fn read_lock(project: &Project) -> miette::Result<(Lockfile, Vec<u8>)> {
    let path = project.lockfile_path();
    let bytes = std::fs::read(&path).map_err(|e| {
        miette::miette!(
            help = "run `sbx lock` (and `sbx build`) first; verify compares an image with sbx.lock",
            "cannot read {}: {e}",
            path.display()
        )
    })?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| miette::miette!(help = "run `sbx lock` to rewrite it", "{} is not UTF-8", path.display()))?;
    Ok((lockfile::from_toml(SourceFile::new(path, text))?, bytes))
}

/// The image named by `arg` (relative paths from `base`), or the project's default image.
pub fn load_image(base: &Path, project: &Project, arg: Option<&str>) -> miette::Result<OciImage> {
    let target = match arg {
        None => {
            let dir = project.image_dir();
            if !dir.join("index.json").is_file() {
                return Err(miette::miette!(
                    help = "run `sbx build` first, or name an image: `sbx verify oci:DIR` or a registry reference",
                    "no image at {}",
                    dir.display()
                ));
            }
            ImageArg::Layout { dir, tag: None }
        }
        Some(a) => match a.strip_prefix("docker://") {
            Some(reference) => ImageArg::Registry(reference.to_string()),
            None => verify::parse_image_arg(a, base),
        },
    };
    match target {
        ImageArg::Layout { dir, tag } => Ok(verify::read_oci_layout(&dir, tag.as_deref())?),
        ImageArg::Registry(reference) => {
            let cache = sbx_image::Cache::from_env()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
            Ok(runtime.block_on(verify::read_registry(&reference, &cache))?)
        }
    }
}

fn host_report(ctx: &Context, lock: &Lockfile, image: &OciImage, report: &ImageReport) -> miette::Result<HostReport> {
    let platform = Platform::host().ok_or_else(|| {
        miette::miette!(help = "run `sbx verify --host` on Linux or macOS", "sbx does not know this host's platform")
    })?;
    if !image.manifests.iter().any(|m| m.platform == platform) {
        return Err(miette::miette!(
            help = format!("build the image for {platform} (add it to [image] platforms) to compare it with this host"),
            "{} has no {platform} image to compare the host's installs with",
            image.reference
        ));
    }
    let data_dir = host_data_dir(&ctx.env).ok_or_else(|| {
        miette::miette!(help = "set MISE_DATA_DIR or HOME", "cannot tell where mise keeps its installs on this host")
    })?;
    Ok(verify::verify_host(lock, &report.layers, platform, &data_dir)?)
}

fn render_image(report: &ImageReport, image: &OciImage, out: Output) -> String {
    let mut s = format!("{} {} against sbx.lock\n", out.paint("1", "image"), image.reference);
    for f in &report.findings {
        let (mark, code) = match f.severity {
            Severity::Error => ("✗", "1;31"),
            Severity::Note => ("!", "33"),
        };
        let place = f.platform.map(|p| format!("{p}: ")).unwrap_or_default();
        s += &format!("  {} {place}{}\n", out.paint(code, mark), f.message);
    }
    for l in &report.layers {
        if l.ok {
            let tree = l.computed_tree_hash.as_deref().unwrap_or_default();
            s += &format!("  {} {}: {} {} tree {}\n", out.paint("32", "✓"), l.platform, l.tool, l.version, short(tree));
        }
    }
    let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
    let summary = format!(
        "  {} platform(s), {} tool layer(s): {}\n",
        image.manifests.len(),
        report.layers.len(),
        if errors == 0 { "match sbx.lock".to_string() } else { format!("{errors} problem(s)") }
    );
    s + &out.paint("2", &summary)
}

fn render_host(host: &HostReport, out: Output) -> String {
    let mut s = format!("{} {} ({})\n", out.paint("1", "host"), host.data_dir.display(), host.platform);
    for t in &host.tools {
        let (mark, code, word) = match t.status {
            HostStatus::Differs => ("✗", "1;31", "differs from the image"),
            HostStatus::MissingOnHost => ("✗", "1;31", "is missing on the host"),
            HostStatus::NotInImage => ("✗", "1;31", "has no layer in the image"),
            HostStatus::Equivalent => ("≈", "33", "matches except where expected"),
            HostStatus::Identical => ("✓", "32", "identical"),
        };
        s += &format!("  {} {} {} {word}", out.paint(code, mark), t.tool, t.version);
        s += &match t.status {
            HostStatus::MissingOnHost => format!(" ({})\n", t.host_dir.display()),
            _ => "\n".to_string(),
        };
        if let Some(note) = &t.note {
            s += &format!("      {note}\n");
        }
        // Unexplained differences first, then the explained ones.
        let mut files: Vec<&verify::FileDiff> = t.files.iter().collect();
        files.sort_by_key(|f| f.reasons.iter().all(|r| r.explained()));
        for f in files {
            let reasons: Vec<&str> = f.reasons.iter().map(|r| reason(*r)).collect();
            let detail = if f.detail.is_empty() { String::new() } else { format!(" ({})", f.detail) };
            s += &format!("      {}: {}{detail}\n", f.path, reasons.join(", "));
        }
    }
    s
}

fn reason(r: FileReason) -> &'static str {
    match r {
        FileReason::Content => "content differs",
        FileReason::ExecBit => "exec bit differs",
        FileReason::SymlinkTarget => "symlink target differs",
        FileReason::Type => "type differs",
        FileReason::OnlyInImage => "only in the image",
        FileReason::OnlyOnHost => "only on the host",
        FileReason::EmbedsInstallPath => "embeds the install path",
        FileReason::MiseNpmWrapper => "mise's npm wrapper",
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Whether `arg` names an image rather than a lockfile or a git revision (for `sbx diff`):
/// `oci:DIR`, `docker://REF`, or a directory holding an OCI layout.
pub fn is_image_arg(arg: &str, base: &Path) -> bool {
    arg.starts_with("oci:") || arg.starts_with("docker://") || base.join(arg).join("index.json").is_file()
}
