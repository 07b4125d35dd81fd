//! Helpers for the worker threads of the pack, verify and import pipelines: one way to join a
//! thread, one way to take a shared lock, one way to hand items over in batches.

use std::any::Any;
use std::thread::ScopedJoinHandle;

use crate::error::{Error, Result};

/// Locks a mutex shared by worker threads. A poisoned lock (a worker panicked while holding
/// it) still guards consistent data here: every user only pushes results or sets flags, and
/// the panic itself is reported by [`join`].
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Joins a scoped worker thread. A panic in the worker becomes [`Error::Internal`] naming
/// the worker (exit 2: a bug in airlock, never blamed on the input), so no join site can
/// silently drop a worker's results.
pub(crate) fn join<T>(handle: ScopedJoinHandle<'_, T>, worker: &str) -> Result<T> {
    handle.join().map_err(|panic| panicked(worker, panic))
}

/// Joins an unscoped worker thread; see [`join`].
pub(crate) fn join_unscoped<T>(handle: std::thread::JoinHandle<T>, worker: &str) -> Result<T> {
    handle.join().map_err(|panic| panicked(worker, panic))
}

/// Collects items for another thread and hands them over in batches: one hand-over per
/// small item (a channel send, a lock, a wake-up) costs more than the item's own work.
/// A batch is full once it holds `max_items` items or `max_bytes` bytes.
pub(crate) struct Batcher<T> {
    items: Vec<T>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl<T> Batcher<T> {
    /// An empty batcher; `max_items` is at least 1.
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Batcher<T> {
        let max_items = max_items.max(1);
        Batcher { items: Vec::with_capacity(max_items), bytes: 0, max_items, max_bytes }
    }

    /// Adds `item`, which holds `bytes` bytes. Returns the batch once it is full.
    #[must_use = "a full batch must be handed over"]
    pub(crate) fn push(&mut self, item: T, bytes: usize) -> Option<Vec<T>> {
        self.items.push(item);
        self.bytes = self.bytes.saturating_add(bytes);
        let full = self.items.len() >= self.max_items || self.bytes >= self.max_bytes;
        full.then(|| self.take())
    }

    /// Takes the items collected so far (possibly none), starting a new batch.
    pub(crate) fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.max_items))
    }

    /// Takes the items collected so far, or `None` if there are none: the last, partial
    /// batch, handed over when the input ends.
    pub(crate) fn take_rest(&mut self) -> Option<Vec<T>> {
        (!self.is_empty()).then(|| self.take())
    }

    /// Whether no item is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn panicked(worker: &str, panic: Box<dyn Any + Send>) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    Error::Internal(format!("the {worker} thread panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_becomes_an_internal_error() {
        let result = std::thread::scope(|s| join(s.spawn(|| -> u32 { panic!("boom") }), "test worker"));
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Internal(_)));
        assert_eq!(
            err.to_string(),
            "internal error: the test worker thread panicked: boom (this is a bug in airlock; please report it)"
        );
        let ok = std::thread::scope(|s| join(s.spawn(|| 7), "test worker"));
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn a_batch_is_handed_over_at_the_item_or_byte_limit() {
        let mut b = Batcher::new(3, 100);
        assert_eq!(b.push('a', 10), None);
        assert_eq!(b.push('b', 10), None);
        assert_eq!(b.push('c', 10), Some(vec!['a', 'b', 'c']));
        assert!(b.is_empty());
        assert_eq!(b.push('d', 60), None);
        assert_eq!(b.push('e', 40), Some(vec!['d', 'e']));
        assert_eq!(b.push('f', 0), None);
        assert_eq!(b.take(), vec!['f']);
        assert_eq!(b.take(), Vec::<char>::new());
        assert_eq!(b.take_rest(), None);
        assert_eq!(b.push('g', 0), None);
        assert_eq!(b.take_rest(), Some(vec!['g']));
        assert!(b.is_empty());
        // A limit of 0 items still makes batches of one.
        assert_eq!(Batcher::new(0, usize::MAX).push(1, 0), Some(vec![1]));
    }
}
