//! The terminal progress bar: an indicatif implementation of [`airlock::progress::Progress`].
//!
//! Shown on stderr only when it is a terminal, `--quiet` was not given and `TERM` is not
//! `dumb` (a dumb terminal cannot redraw a line). It is drawn without colour (so `NO_COLOR`
//! holds; airlock prints no colour anywhere) and clears itself: each phase gets a bar of its
//! own, and the bar before it is cleared first, so no frame is left above the result.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use airlock::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-and-file progress bar, or nothing.
pub struct Bar {
    /// Whether bars are drawn at all.
    shown: bool,
    /// The current phase's bar, between `start` and `finish`.
    bar: Mutex<Option<ProgressBar>>,
    files_total: AtomicU64,
    files_done: AtomicU64,
}

impl Bar {
    /// A bar on stderr if stderr is a terminal, `quiet` is false and `TERM` is not `dumb`;
    /// otherwise hidden.
    pub fn new(quiet: bool) -> Bar {
        let shown = !quiet && !dumb_terminal() && !ProgressDrawTarget::stderr().is_hidden();
        Bar { shown, bar: Mutex::new(None), files_total: AtomicU64::new(0), files_done: AtomicU64::new(0) }
    }

    /// The current bar, if one is shown.
    fn current(&self) -> Option<ProgressBar> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `TERM=dumb`: a terminal that cannot move the cursor or clear a line.
fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

impl Progress for Bar {
    fn start(&self, phase: &str, bytes: u64, files: u64) {
        if !self.shown {
            return;
        }
        // Zero bytes means "not known yet" (pack learns sizes while hashing).
        let template = if bytes == 0 {
            "{prefix:>9} {spinner} {bytes} {msg} {binary_bytes_per_sec}"
        } else {
            "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg} {binary_bytes_per_sec} ETA {eta}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        // Styled before it is drawn: a bar's first frame is drawn with what it has then.
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(phase.to_owned())
            .with_message(files_message(0, files));
        self.files_total.store(files, Relaxed);
        self.files_done.store(0, Relaxed);
        let mut slot = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = slot.take() {
            previous.finish_and_clear();
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
        *slot = Some(bar);
    }

    fn add_bytes(&self, n: u64) {
        if let Some(bar) = self.current() {
            bar.inc(n);
        }
    }

    fn add_file(&self) {
        if let Some(bar) = self.current() {
            let done = self.files_done.fetch_add(1, Relaxed) + 1;
            let total = self.files_total.load(Relaxed);
            if done.is_multiple_of(64) || done == total {
                bar.set_message(files_message(done, total));
            }
        }
    }

    fn finish(&self) {
        let mut slot = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = slot.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    /// A command that fails between `start` and `finish` still leaves no frame behind.
    fn drop(&mut self) {
        self.finish();
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
