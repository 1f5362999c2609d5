//! Human renderings of lockfile changes: after `sbx lock`, for `sbx lock --check`, and for
//! `sbx diff` (lockfiles, git revisions or images on either side). Red flags come first.

use std::cmp::Ordering;

use sbx_mise::lock::StaleReason;
use sbx_mise::lockfile::diff::{LockDiff, ToolChange};

use crate::output::Output;

/// One line per change, indented, red flags marked.
pub fn render_text(diff: &LockDiff, out: Output) -> String {
    let mut s = String::new();
    if let Some((old, new)) = &diff.platforms {
        let list = |v: &[sbx_mise::Platform]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
        s += &format!("  ~ platforms: [{}] → [{}]\n", list(old), list(new));
    }
    if let Some((old, new)) = &diff.base {
        let d = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        s += &format!("  ~ base image: {} → {}\n", d(old), d(new));
    }
    for change in &diff.tools {
        s += &match change {
            // An image records no requests: its entries carry the version as request.
            ToolChange::Added { name, request, version } if request == version => {
                format!("  {} {name} {version}\n", out.paint("32", "+"))
            }
            ToolChange::Added { name, request, version } => {
                format!("  {} {name} {request} → {version}\n", out.paint("32", "+"))
            }
            ToolChange::Removed { name, version } => format!("  {} {name} {version}\n", out.paint("31", "-")),
            ToolChange::Version { name, from, to, direction } => {
                let (mark, word) = match direction {
                    Ordering::Less => ("↑", "upgraded"),
                    Ordering::Greater => ("↓", "downgraded"),
                    Ordering::Equal => ("~", "changed"),
                };
                format!("  {} {name} {from} → {to} ({word})\n", out.paint("33", mark))
            }
            ToolChange::Artifacts { name, version, platforms } => {
                let mut t = format!(
                    "  {} {name} {version}: artifact changed while the version did not — check this\n",
                    out.paint("1;31", "!")
                );
                for (p, what) in platforms {
                    t += &format!("      {p}: {what}\n");
                }
                t
            }
            ToolChange::Closure { name, version, added, removed, changed, tampered } => {
                let mark = if tampered.is_empty() { out.paint("33", "~") } else { out.paint("1;31", "!") };
                let mut t = format!("  {mark} {name} {version}: dependencies changed\n");
                for (label, list) in [
                    ("artifact changed, same version", tampered),
                    ("added", added),
                    ("removed", removed),
                    ("upgraded", changed),
                ] {
                    if !list.is_empty() {
                        t += &format!("      {label}: {}\n", list.join(", "));
                    }
                }
                t
            }
        };
    }
    if diff.unchanged > 0 {
        s += &out.paint("2", &format!("  {} unchanged\n", diff.unchanged));
    }
    s
}

/// Why `sbx lock --check` found the lockfile stale.
pub fn render_stale(reasons: &[StaleReason], out: Output) -> String {
    let mut s = String::new();
    for r in reasons {
        s += &match r {
            StaleReason::ToolAdded { name, requests } => {
                format!("  {} {name} {} is configured but not locked\n", out.paint("32", "+"), requests.join(", "))
            }
            StaleReason::ToolRemoved { name, versions } => {
                format!(
                    "  {} {name} {} is locked but no longer configured\n",
                    out.paint("31", "-"),
                    versions.join(", ")
                )
            }
            StaleReason::RequestChanged { name, locked, wanted } => {
                let locked: Vec<String> = locked.iter().map(|(r, v)| format!("{r} (locked {v})")).collect();
                format!("  {} {name}: {} → {}\n", out.paint("33", "~"), locked.join(", "), wanted.join(", "))
            }
            StaleReason::BackendChanged { name, locked, wanted } => {
                format!("  {} {name}: backend {locked} → {wanted}\n", out.paint("33", "~"))
            }
            StaleReason::PlatformsChanged { locked, wanted } => {
                format!("  {} platforms: [{}] → [{}]\n", out.paint("33", "~"), locked.join(", "), wanted.join(", "))
            }
            StaleReason::MisePinDiffers { name, locked, pinned } => {
                format!(
                    "  {} {name}: locked {}, mise.lock pins {}\n",
                    out.paint("33", "~"),
                    locked.join(", "),
                    pinned.join(", ")
                )
            }
            StaleReason::OtherInputs => {
                format!("  {} mirrors, backend options or the base image changed\n", out.paint("33", "~"))
            }
        };
    }
    s
}

/// A Markdown table fit for a pull-request comment.
pub fn render_markdown(diff: &LockDiff, old: &str, new: &str) -> String {
    let mut s = format!("### sbx.lock: `{old}` → `{new}`\n\n");
    if diff.is_empty() {
        return s + "No changes.\n";
    }
    if diff.tools.iter().any(ToolChange::is_red_flag) {
        s += "> **Warning:** an artifact or checksum changed while its version did not. Check where it comes from before merging.\n\n";
    }
    s += "| | tool | change |\n|---|---|---|\n";
    if let Some((o, n)) = &diff.platforms {
        let list = |v: &[sbx_mise::Platform]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
        s += &format!("| ~ | *platforms* | {} → {} |\n", list(o), list(n));
    }
    if let Some((o, n)) = &diff.base {
        let d = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        s += &format!("| ~ | *base image* | `{}` → `{}` |\n", d(o), d(n));
    }
    for c in &diff.tools {
        s += &match c {
            ToolChange::Added { name, request, version } if request == version => {
                format!("| ➕ | {name} | added: **{version}** |\n")
            }
            ToolChange::Added { name, request, version } => {
                format!("| ➕ | {name} | added: {request} → **{version}** |\n")
            }
            ToolChange::Removed { name, version } => format!("| ➖ | {name} | removed ({version}) |\n"),
            ToolChange::Version { name, from, to, direction } => {
                let word = match direction {
                    Ordering::Less => "⬆️",
                    Ordering::Greater => "⬇️",
                    Ordering::Equal => "~",
                };
                format!("| {word} | {name} | {from} → **{to}** |\n")
            }
            ToolChange::Artifacts { name, version, platforms } => {
                let what: Vec<String> = platforms.iter().map(|(p, w)| format!("{p}: {w}")).collect();
                format!("| ⚠️ | {name} {version} | artifact changed, same version: {} |\n", what.join("; "))
            }
            ToolChange::Closure { name, version, added, removed, changed, tampered } => {
                let mut parts = Vec::new();
                if !tampered.is_empty() {
                    parts.push(format!("⚠️ artifact changed, same version: {}", tampered.join(", ")));
                }
                for (label, list) in [("added", added), ("removed", removed), ("upgraded", changed)] {
                    if !list.is_empty() {
                        parts.push(format!("{label}: {}", list.join(", ")));
                    }
                }
                let mark = if tampered.is_empty() { "~" } else { "⚠️" };
                format!("| {mark} | {name} {version} | dependencies: {} |\n", parts.join("; "))
            }
        };
    }
    if diff.unchanged > 0 {
        s += &format!("\n{} tool version(s) unchanged.\n", diff.unchanged);
    }
    s
}
