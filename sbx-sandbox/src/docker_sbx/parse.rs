//! Reading the tables Docker's `sbx` CLI prints (`sbx ls`, `sbx secret ls`, `sbx policy ls`).
//!
//! They are aligned text tables (Go's tabwriter): a header line of upper-case column names,
//! then one row per entry, a cell never wider than the gap to the next column's header start.
//! Columns are found by name, not position, since Docker's releases differ (`SCOPE SERVICE
//! SECRET` vs `SCOPE TYPE NAME SECRET`; `NAME TYPE ORIGIN DECISION STATUS RESOURCES` vs
//! `PROVENANCE APPLIES_TO POLICY/RULE TYPE DECISION RESOURCES`). Output that has no
//! recognizable header is an error, never "nothing there".

use std::collections::BTreeMap;

/// A table: column name → cell, one map per row (continuation rows merged by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The rows, in output order.
    pub rows: Vec<BTreeMap<String, String>>,
    /// Each row's line as printed, trimmed (a continuation line's text need not line up with
    /// the header's columns).
    pub lines: Vec<String>,
}

fn header_columns(line: &str) -> Vec<(usize, String)> {
    let mut cols = Vec::new();
    let mut start = None;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let boundary = b == b' ' && bytes.get(i + 1).is_none_or(|n| *n == b' ');
        match (start, b == b' ') {
            (None, false) => start = Some(i),
            (Some(s), true) if boundary => {
                cols.push((s, line[s..i].to_string()));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        cols.push((s, line[s..].trim_end().to_string()));
    }
    cols
}

/// Finds the header line (the first one containing every name in `required`) and cuts the
/// following lines into cells at the header's column starts. `None` when no header is found.
pub fn table(output: &str, required: &[&str]) -> Option<Table> {
    let lines: Vec<&str> = output.lines().collect();
    let at = lines.iter().position(|l| {
        let cols = header_columns(l);
        required.iter().all(|r| cols.iter().any(|(_, c)| c == r))
    })?;
    let cols = header_columns(lines[at]);
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for line in &lines[at + 1..] {
        if line.trim().is_empty() {
            continue;
        }
        let mut row = BTreeMap::new();
        for (i, (start, name)) in cols.iter().enumerate() {
            let end = cols.get(i + 1).map_or(line.len(), |(s, _)| *s).min(line.len());
            let cell = if *start < line.len() && line.is_char_boundary(*start) && line.is_char_boundary(end) {
                line[*start..end].trim()
            } else {
                ""
            };
            row.insert(name.clone(), cell.to_string());
        }
        rows.push(row);
        raw.push(line.trim().to_string());
    }
    Some(Table { rows, lines: raw })
}

/// One stored secret as `sbx secret ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// `(global)` or a sandbox name.
    pub scope: String,
    /// The service (or registry) name.
    pub service: String,
    /// `service`, `registry`, `custom`… when the CLI prints a TYPE column.
    pub kind: Option<String>,
}

/// Parses `sbx secret ls`. `Err` carries the output when it is neither a table nor the CLI's
/// "No secrets found" message.
pub fn secrets(output: &str) -> Result<Vec<SecretRow>, String> {
    if output.trim().is_empty() || output.trim_start().starts_with("No secrets found") {
        return Ok(Vec::new());
    }
    let t = table(output, &["SCOPE", "SECRET"]).ok_or_else(|| output.to_string())?;
    let mut out = Vec::new();
    for row in t.rows {
        let service = row.get("SERVICE").or_else(|| row.get("NAME")).cloned().unwrap_or_default();
        if service.is_empty() {
            return Err(output.to_string());
        }
        out.push(SecretRow {
            scope: row.get("SCOPE").cloned().unwrap_or_default(),
            service,
            kind: row.get("TYPE").cloned().filter(|k| !k.is_empty()),
        });
    }
    Ok(out)
}

/// Where a policy rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    /// Every sandbox (`local` origin or `all`).
    Global,
    /// One sandbox (`sandbox:<name>`).
    Sandbox(String),
    /// Set by the organization (`remote`), or a scope sbx does not know.
    Other(String),
}

/// One rule as `sbx policy ls` lists it (continuation lines merged into `resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// The rule's name / id column.
    pub name: String,
    /// `network`, `filesystem:read`, …
    pub kind: String,
    /// Where it applies.
    pub scope: RuleScope,
    /// `allow` or `deny`.
    pub decision: String,
    /// `active` / `inactive` when printed.
    pub status: Option<String>,
    /// Hosts or patterns.
    pub resources: Vec<String>,
}

/// Whether the CLI said organization governance is active (local rules then have no effect).
pub fn governance_active(output: &str) -> bool {
    output.lines().any(|l| l.trim_start().starts_with("Governance"))
}

fn scope_of(cell: &str) -> RuleScope {
    match cell {
        "local" | "all" => RuleScope::Global,
        other => match other.strip_prefix("sandbox:") {
            Some(name) => RuleScope::Sandbox(name.to_string()),
            None => RuleScope::Other(other.to_string()),
        },
    }
}

/// Parses `sbx policy ls` (both documented layouts).
pub fn policies(output: &str) -> Result<Vec<PolicyRow>, String> {
    if output.trim().is_empty() || output.trim_start().starts_with("No policies") {
        return Ok(Vec::new());
    }
    let t = table(output, &["DECISION", "RESOURCES"]).ok_or_else(|| output.to_string())?;
    let mut out: Vec<PolicyRow> = Vec::new();
    for (row, line) in t.rows.iter().zip(&t.lines) {
        let cell = |k: &str| row.get(k).cloned().unwrap_or_default();
        let name = if row.contains_key("NAME") { cell("NAME") } else { cell("POLICY/RULE") };
        let resource = cell("RESOURCES");
        if name.is_empty() && cell("DECISION").is_empty() {
            // A continuation line: more resources of the rule above, wherever they are printed.
            let more = line.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from);
            match out.last_mut() {
                Some(last) if !line.is_empty() => last.resources.extend(more),
                _ => return Err(output.to_string()),
            }
            continue;
        }
        let scope = if row.contains_key("ORIGIN") { cell("ORIGIN") } else { cell("APPLIES_TO") };
        out.push(PolicyRow {
            name,
            kind: cell("TYPE"),
            scope: scope_of(&scope),
            decision: cell("DECISION"),
            status: row.get("STATUS").cloned().filter(|s| !s.is_empty()),
            resources: resource.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from).collect(),
        });
    }
    Ok(out)
}

/// Parses `sbx ls`: the sandbox names.
pub fn sandboxes(output: &str) -> Result<Vec<String>, String> {
    if output.trim().is_empty() || output.trim_start().starts_with("No sandboxes") {
        return Ok(Vec::new());
    }
    let t = table(output, &["SANDBOX"]).ok_or_else(|| output.to_string())?;
    Ok(t.rows.into_iter().filter_map(|r| r.get("SANDBOX").cloned()).filter(|n| !n.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_tables_of_both_releases() {
        let old = "SCOPE      SERVICE   SECRET\n(global)   github    gho_GCaw4o****...****43qy\n";
        assert_eq!(
            secrets(old).unwrap(),
            vec![SecretRow { scope: "(global)".into(), service: "github".into(), kind: None }]
        );
        let new = "SCOPE                    TYPE      NAME     SECRET\n\
                   codex-dotfiles           service   github   (stored)\n\
                   (global)                 service   openai   (oauth configured)\n";
        let rows = secrets(new).unwrap();
        assert_eq!(
            rows[1],
            SecretRow { scope: "(global)".into(), service: "openai".into(), kind: Some("service".into()) }
        );
        assert_eq!(rows[0].scope, "codex-dotfiles");
        assert!(secrets("No secrets found for scope \"x\".\n").unwrap().is_empty());
        assert!(secrets("Error: daemon not running\n").is_err());
    }

    #[test]
    fn policy_tables_with_continuations() {
        let out = "NAME                  TYPE      ORIGIN               DECISION   STATUS   RESOURCES\n\
                   balanced-dev          network   local                allow      active   api.anthropic.com\n\
                   kit:my-sandbox        network   sandbox:my-sandbox   allow      active   api.example.com\n\
                   \x20                                                                      cdn.example.com\n";
        let rows = policies(out).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].scope, RuleScope::Global);
        assert_eq!(rows[1].scope, RuleScope::Sandbox("my-sandbox".into()));
        assert_eq!(rows[1].resources, vec!["api.example.com", "cdn.example.com"]);
        let newer = "PROVENANCE   APPLIES_TO     POLICY/RULE                  TYPE               DECISION   RESOURCES\n\
                     local        all            default-ai-services          network            allow      api.anthropic.com:443\n";
        let rows = policies(newer).unwrap();
        assert_eq!(rows[0].name, "default-ai-services");
        assert_eq!(rows[0].scope, RuleScope::Global);
    }

    #[test]
    fn sandbox_list() {
        let out = "SANDBOX       AGENT    STATUS    PORTS   WORKSPACE\nmy-sandbox    claude   running           ~/my-project\n";
        assert_eq!(sandboxes(out).unwrap(), vec!["my-sandbox"]);
        assert!(sandboxes("garbage").is_err());
    }
}
