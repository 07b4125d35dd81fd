//! Progress display for long operations (pack, verify, import).
//!
//! Shown on stderr only when it is a terminal and `--quiet` was not given; otherwise every
//! call is a no-op, so library code can report progress unconditionally.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-and-file progress bar, or nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress reporter that shows nothing.
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// A bar on stderr if stderr is a terminal, else hidden.
    pub fn stderr() -> Progress {
        let target = ProgressDrawTarget::stderr();
        if target.is_hidden() {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, target);
        Progress { bar: Some(bar) }
    }

    /// Starts a phase with its totals (0 for a total not known yet).
    pub fn start(&self, phase: &str, bytes: u64, files: u64) {
        if let Some(bar) = &self.bar {
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
            FILES_TOTAL.store(files, std::sync::atomic::Ordering::Relaxed);
            FILES_DONE.store(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Counts bytes done.
    pub fn add_bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Counts one file done.
    pub fn add_file(&self) {
        if let Some(bar) = &self.bar {
            use std::sync::atomic::Ordering::Relaxed;
            let done = FILES_DONE.fetch_add(1, Relaxed) + 1;
            let total = FILES_TOTAL.load(Relaxed);
            if done % 64 == 0 || done == total {
                bar.set_message(files_message(done, total));
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
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

// One bar per process is ever shown, so the file counters can be process-wide.
static FILES_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FILES_DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
