//! Helpers for the worker threads of the pack and import pipelines.

/// Locks a mutex shared by worker threads. A poisoned lock (a worker panicked while holding
/// it) still guards consistent data here: every user only pushes results or sets flags.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
