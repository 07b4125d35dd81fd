//! The terminal progress bar: an indicatif implementation of [`airlock::progress::Progress`].
//!
//! Shown on stderr only when it is a terminal and `--quiet` was not given.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use airlock::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-and-file progress bar, or nothing.
pub struct Bar {
    bar: Option<ProgressBar>,
    files_total: AtomicU64,
    files_done: AtomicU64,
}

impl Bar {
    /// A bar on stderr if stderr is a terminal and `quiet` is false; otherwise hidden.
    pub fn new(quiet: bool) -> Bar {
        let target = ProgressDrawTarget::stderr();
        let bar = (!quiet && !target.is_hidden()).then(|| ProgressBar::with_draw_target(None, target));
        Bar { bar, files_total: AtomicU64::new(0), files_done: AtomicU64::new(0) }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, bytes: u64, files: u64) {
        let Some(bar) = &self.bar else { return };
        // Zero bytes means "not known yet" (pack learns sizes while hashing).
        let template = if bytes == 0 {
            "{prefix:>9} {spinner} {bytes} {msg} {binary_bytes_per_sec}"
        } else {
            "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg} {binary_bytes_per_sec} ETA {eta}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(phase.to_owned());
        bar.set_length(bytes);
        bar.set_position(0);
        bar.set_message(files_message(0, files));
        bar.reset_eta();
        bar.set_draw_target(ProgressDrawTarget::stderr());
        self.files_total.store(files, Relaxed);
        self.files_done.store(0, Relaxed);
    }

    fn add_bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn add_file(&self) {
        if let Some(bar) = &self.bar {
            let done = self.files_done.fetch_add(1, Relaxed) + 1;
            let total = self.files_total.load(Relaxed);
            if done.is_multiple_of(64) || done == total {
                bar.set_message(files_message(done, total));
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// "3/10 files", or "3 files" while the total is not known (0: pack's walk is still going).
fn files_message(done: u64, total: u64) -> String {
    if total == 0 {
        format!("{done} files")
    } else {
        format!("{done}/{total} files")
    }
}
