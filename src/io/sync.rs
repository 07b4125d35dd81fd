//! Helpers for the worker threads of the pack and import pipelines: one way to join a
//! thread, one way to take a shared lock.

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
}
