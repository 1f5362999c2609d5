//! indicatif bars for `sbx build` on a terminal: one bar per download (bytes, rate, ETA), one
//! spinner per layer being built, one line per blob pushed. Nothing is drawn when
//! [`Output::progress`] is off (pipes, `--quiet`, `NO_COLOR`… see [`crate::output`]); warnings
//! are printed either way.

use indicatif::ProgressBar;

use crate::output::Output;
use crate::progress::Bars;

/// The build's progress display.
pub struct BuildBars(Bars<String>);

impl BuildBars {
    /// Bars on a terminal; nothing otherwise.
    pub fn new(out: Output) -> Self {
        Self(Bars::new(out))
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        self.0.finish();
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
            Some(n) => self.0.add(
                key.clone(),
                ProgressBar::new(n),
                "{spinner} {msg:40!} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ),
            None => self.0.add(key.clone(), ProgressBar::no_length(), "{spinner} {msg:40!} {bytes} {bytes_per_sec}"),
        }
        self.0.with(&key, |b| b.set_message(format!("download {}", short(url))));
    }

    fn download_progress(&self, url: &str, bytes: u64) {
        self.0.with(&format!("dl {url}"), |b| b.inc(bytes));
    }

    fn download_finished(&self, url: &str) {
        if let Some(b) = self.0.remove(&format!("dl {url}")) {
            b.finish_and_clear();
        }
    }

    fn layer_started(&self, name: &str) {
        let key = format!("layer {name}");
        self.0.add(key.clone(), ProgressBar::new_spinner(), "{spinner} {msg}");
        self.0.with(&key, |b| b.set_message(format!("layer {name}")));
    }

    fn layer_finished(&self, name: &str, cached: bool) {
        let mark = self.0.out.paint("32", "✓");
        let how = if cached { "cached" } else { "built" };
        if let Some(b) = self.0.remove(&format!("layer {name}")) {
            b.finish_with_message(format!("{mark} layer {name} ({how})"));
        }
    }

    fn blob_pushed(&self, digest: &str, size: u64, uploaded: bool) {
        let how = if uploaded { "pushed" } else { "already there" };
        self.0.println(format!("  {} {:.1} MB {how}", &digest[..digest.len().min(19)], size as f64 / 1e6));
    }

    fn warn(&self, message: &str) {
        let text = format!("{} {message}", self.0.out.paint("33", "warning:"));
        if !self.0.println(&text) {
            eprintln!("{text}");
        }
    }
}
