//! indicatif progress for long work, drawn only when [`Output::progress`] allows it.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sbx_mise::lock::LockProgress;

use crate::output::Output;

/// Bars on stderr, one per key, drawn only when [`Output::progress`] is on; otherwise every
/// method does nothing. `sbx lock` ([`LockBars`]) and `sbx build` draw with it.
pub struct Bars<K> {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<K, ProgressBar>>,
    /// Where and how to print (colors, quiet).
    pub out: Output,
}

impl<K: Ord> Bars<K> {
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

    /// Shows `bar` under `key`, drawn with the indicatif `template` and ticking by itself.
    pub fn add(&self, key: K, bar: ProgressBar, template: &str) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(bar.with_style(style(template)));
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(key, bar);
        }
    }

    /// The bar under `key`, a new `{spinner} {msg}` line when there is none yet.
    pub fn spinner(&self, key: K) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().ok()?;
        let bar = bars.entry(key).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner().with_style(style("{spinner} {msg}")));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Some(bar.clone())
    }

    /// Calls `f` with the bar under `key`, if it is shown.
    pub fn with<Q: Ord + ?Sized>(&self, key: &Q, f: impl FnOnce(&ProgressBar))
    where
        K: Borrow<Q>,
    {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(key).cloned()) {
            f(&bar);
        }
    }

    /// Takes the bar under `key` out of the set (the caller finishes it).
    pub fn remove<Q: Ord + ?Sized>(&self, key: &Q) -> Option<ProgressBar>
    where
        K: Borrow<Q>,
    {
        self.bars.lock().ok()?.remove(key)
    }

    /// Prints a line above the bars; `false` when no bars are drawn (the caller prints it
    /// itself if it must be seen anyway).
    pub fn println(&self, line: impl AsRef<str>) -> bool {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
                true
            }
            None => false,
        }
    }
}

/// The style of every bar: `template` (a constant, so it always parses), `=> ` for the bar.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// One spinner line per tool version while `sbx lock` runs: resolving → locked.
pub struct LockBars(Bars<(String, String)>);

impl LockBars {
    /// Bars on a terminal; nothing otherwise.
    pub fn new(out: Output) -> Self {
        Self(Bars::new(out))
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        self.0.finish();
    }

    fn with_bar(&self, tool: &str, request: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.0.spinner((tool.to_string(), request.to_string())) {
            f(&bar);
        }
    }
}

impl LockProgress for LockBars {
    fn resolving(&self, tool: &str, request: &str) {
        self.with_bar(tool, request, |b| b.set_message(format!("{tool} {request}  resolving…")));
    }

    fn locked(&self, tool: &str, request: &str, version: &str, kept: bool) {
        let how = if kept { "kept" } else { "locked" };
        let mark = self.0.out.paint("32", "✓");
        self.with_bar(tool, request, |b| b.finish_with_message(format!("{mark} {tool} {request} → {version} ({how})")));
    }

    fn failed(&self, tool: &str, request: &str) {
        let mark = self.0.out.paint("31", "✗");
        self.with_bar(tool, request, |b| b.finish_with_message(format!("{mark} {tool} {request}")));
    }
}
