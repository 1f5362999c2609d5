//! indicatif progress for long work, drawn only when [`Output::progress`] allows it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sbx_mise::lock::LockProgress;

use crate::output::Output;

/// One spinner line per tool version while `sbx lock` runs: resolving → locked.
pub struct LockBars {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<(String, String), ProgressBar>>,
    out: Output,
}

impl LockBars {
    /// Bars on a terminal; nothing otherwise.
    pub fn new(out: Output) -> Self {
        let multi = out.progress.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi, bars: Mutex::new(BTreeMap::new()), out }
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    fn with_bar(&self, tool: &str, request: &str, f: impl FnOnce(&ProgressBar)) {
        let Some(multi) = &self.multi else { return };
        let Ok(mut bars) = self.bars.lock() else { return };
        let bar = bars.entry((tool.to_string(), request.to_string())).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            let style =
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        f(bar);
    }
}

impl LockProgress for LockBars {
    fn resolving(&self, tool: &str, request: &str) {
        self.with_bar(tool, request, |b| b.set_message(format!("{tool} {request}  resolving…")));
    }

    fn locked(&self, tool: &str, request: &str, version: &str, kept: bool) {
        let how = if kept { "kept" } else { "locked" };
        let mark = self.out.paint("32", "✓");
        self.with_bar(tool, request, |b| b.finish_with_message(format!("{mark} {tool} {request} → {version} ({how})")));
    }

    fn failed(&self, tool: &str, request: &str) {
        let mark = self.out.paint("31", "✗");
        self.with_bar(tool, request, |b| b.finish_with_message(format!("{mark} {tool} {request}")));
    }
}
