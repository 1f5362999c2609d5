//! indicatif bars for `sbx build` on a terminal: one bar per download (bytes, rate, ETA), one
//! spinner per layer being built, one line per blob pushed. Nothing is drawn when
//! [`Output::progress`] is off (pipes, `--quiet`, `NO_COLOR`… see [`crate::output`]); warnings
//! are printed either way.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// The build's progress display.
pub struct BuildBars {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    out: Output,
}

impl BuildBars {
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

    fn add(&self, key: &str, bar: ProgressBar, template: &str) {
        let Some(multi) = &self.multi else { return };
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = multi.add(bar.with_style(style.progress_chars("=> ")));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(key.to_string(), bar);
        }
    }

    fn with(&self, key: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(key).cloned()) {
            f(&bar);
        }
    }

    fn remove(&self, key: &str) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|mut b| b.remove(key))
    }
}

/// The file name of a URL, for a short bar label.
fn short(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

impl sbx_image::Progress for BuildBars {
    fn download_started(&self, url: &str, total: Option<u64>) {
        let key = format!("dl {url}");
        match total {
            Some(n) => self.add(
                &key,
                ProgressBar::new(n),
                "{spinner} {msg:40!} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ),
            None => self.add(&key, ProgressBar::no_length(), "{spinner} {msg:40!} {bytes} {bytes_per_sec}"),
        }
        self.with(&key, |b| b.set_message(format!("download {}", short(url))));
    }

    fn download_progress(&self, url: &str, bytes: u64) {
        self.with(&format!("dl {url}"), |b| b.inc(bytes));
    }

    fn download_finished(&self, url: &str) {
        if let Some(b) = self.remove(&format!("dl {url}")) {
            b.finish_and_clear();
        }
    }

    fn layer_started(&self, name: &str) {
        let key = format!("layer {name}");
        self.add(&key, ProgressBar::new_spinner(), "{spinner} {msg}");
        self.with(&key, |b| b.set_message(format!("layer {name}")));
    }

    fn layer_finished(&self, name: &str, cached: bool) {
        let mark = self.out.paint("32", "✓");
        let how = if cached { "cached" } else { "built" };
        if let Some(b) = self.remove(&format!("layer {name}")) {
            b.finish_with_message(format!("{mark} layer {name} ({how})"));
        }
    }

    fn blob_pushed(&self, digest: &str, size: u64, uploaded: bool) {
        if let Some(m) = &self.multi {
            let how = if uploaded { "pushed" } else { "already there" };
            let _ = m.println(format!("  {} {:.1} MB {how}", &digest[..digest.len().min(19)], size as f64 / 1e6));
        }
    }

    fn warn(&self, message: &str) {
        let text = format!("{} {message}", self.out.paint("33", "warning:"));
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}
