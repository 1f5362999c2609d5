//! The audit log: one JSON line per decision in the sandbox's state directory, and a reader for
//! `sbx log [--follow]`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ProxyError;

/// The file name of the audit log inside the state directory.
pub const AUDIT_LOG_FILE: &str = "proxy-audit.jsonl";

/// The audit log path for a sandbox state directory.
pub fn audit_log_path(state_dir: &Path) -> PathBuf {
    state_dir.join(AUDIT_LOG_FILE)
}

/// What the proxy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Forwarded.
    Allow,
    /// Refused by the policy (the client got a 403, or the tunnel was closed).
    Deny,
    /// Allowed, but failed (resolution, connection, malformed traffic).
    Error,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request arrived, RFC 3339 UTC.
    pub time: String,
    /// The sandbox name.
    pub sandbox: String,
    /// `CONNECT`, or the HTTP method of a forwarded or intercepted request.
    pub method: String,
    /// The destination host as requested (normalised).
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// The address actually connected to, if any.
    pub addr: Option<String>,
    /// The decision.
    pub decision: Decision,
    /// The rule that decided, with where it came from.
    pub rule: String,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The service whose credential was injected, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<String>,
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// How long the request or tunnel lasted, in milliseconds.
    pub duration_ms: u64,
}

impl AuditEntry {
    /// One human-readable line, as `sbx log` prints it.
    pub fn render_line(&self) -> String {
        let decision = match self.decision {
            Decision::Allow => "allow",
            Decision::Deny => "DENY ",
            Decision::Error => "error",
        };
        let mut line = format!("{} {decision} {} {}:{}", self.time, self.method, self.host, self.port);
        if let Some(addr) = &self.addr {
            line.push_str(&format!(" ({addr})"));
        }
        line.push_str(&format!(" by {}", self.rule));
        if let Some(service) = &self.injected {
            line.push_str(&format!(" [credential: {service}]"));
        }
        if let Some(reason) = &self.reason {
            line.push_str(&format!(": {reason}"));
        }
        if self.decision == Decision::Allow {
            line.push_str(&format!(" ↑{} ↓{} {}ms", self.bytes_up, self.bytes_down, self.duration_ms));
        }
        line
    }
}

/// The current time, RFC 3339 UTC with millisecond precision.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    now.format(&format).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// The append-only writer the proxy uses.
#[derive(Debug)]
pub(crate) struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating if needed) the log in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<AuditLog, ProxyError> {
        let path = audit_log_path(state_dir);
        let err = |source| ProxyError::Audit { path: path.clone(), source };
        std::fs::create_dir_all(state_dir).map_err(err)?;
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(err)?;
        Ok(AuditLog { file: Mutex::new(file) })
    }

    /// Appends one entry. A failing disk must not take the proxy down, so errors are dropped.
    pub fn record(&self, entry: &AuditEntry) {
        let Ok(mut line) = serde_json::to_vec(entry) else { return };
        line.push(b'\n');
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(&line);
        }
    }
}

/// Reads the audit log incrementally: [`read_new`](Self::read_new) returns the entries written
/// since the previous call, so `sbx log --follow` is a loop around it.
#[derive(Debug)]
pub struct AuditReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    skipped: u64,
}

impl AuditReader {
    /// A reader for the log in `state_dir`, starting at the beginning. The file need not exist.
    pub fn open(state_dir: &Path) -> AuditReader {
        AuditReader { path: audit_log_path(state_dir), offset: 0, partial: Vec::new(), skipped: 0 }
    }

    /// The log file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many lines could not be parsed so far (skipped).
    pub fn skipped_lines(&self) -> u64 {
        self.skipped
    }

    /// Complete entries appended since the last call. A missing file reads as empty; a file
    /// that shrank (rotated or truncated) is read again from the start.
    pub fn read_new(&mut self) -> Result<Vec<AuditEntry>, ProxyError> {
        let err = |source| ProxyError::Audit { path: self.path.clone(), source };
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let len = file.metadata().map_err(err)?.len();
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(err)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(err)?;
        self.offset += data.len() as u64;
        self.partial.extend_from_slice(&data);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else { return Ok(Vec::new()) };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        let mut entries = Vec::new();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<AuditEntry>(line) {
                Ok(entry) => entries.push(entry),
                Err(_) => self.skipped += 1,
            }
        }
        Ok(entries)
    }

    /// Calls `each` for every entry, then keeps polling every `interval` for new ones until
    /// `each` returns `false` (blocking; for `sbx log --follow`).
    pub fn follow(&mut self, interval: Duration, mut each: impl FnMut(&AuditEntry) -> bool) -> Result<(), ProxyError> {
        loop {
            for entry in self.read_new()? {
                if !each(&entry) {
                    return Ok(());
                }
            }
            std::thread::sleep(interval);
        }
    }
}

/// Every entry currently in the log of `state_dir`.
pub fn read_audit_log(state_dir: &Path) -> Result<Vec<AuditEntry>, ProxyError> {
    AuditReader::open(state_dir).read_new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str) -> AuditEntry {
        AuditEntry {
            time: now_rfc3339(),
            sandbox: "s".into(),
            method: "CONNECT".into(),
            host: host.into(),
            port: 443,
            addr: None,
            decision: Decision::Deny,
            rule: "preset \"balanced\" (default)".into(),
            reason: Some("not allowed".into()),
            injected: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        }
    }

    #[test]
    fn write_then_read_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = AuditReader::open(dir.path());
        assert!(reader.read_new().unwrap().is_empty());
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&entry("a.com"));
        log.record(&entry("b.com"));
        let got = reader.read_new().unwrap();
        assert_eq!(got.iter().map(|e| e.host.as_str()).collect::<Vec<_>>(), ["a.com", "b.com"]);
        // A partial line is held back until it is complete.
        std::fs::OpenOptions::new().append(true).open(reader.path()).unwrap().write_all(b"{\"time\":").unwrap();
        assert!(reader.read_new().unwrap().is_empty());
        log.record(&entry("c.com"));
        // The torn line and the one appended after it form one unparsable line: skipped, counted.
        assert!(reader.read_new().unwrap().is_empty());
        assert_eq!(reader.skipped_lines(), 1);
        assert!(entry("x").render_line().contains("DENY  CONNECT x:443"));
        assert_eq!(read_audit_log(dir.path()).unwrap().len(), 2);
    }
}
