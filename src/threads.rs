//! How many threads strata's parallel work (gzip compression of layers, fsck's hashing)
//! uses: one per CPU unless the caller says otherwise, e.g. on a shared build host. Outputs
//! never depend on it (see [`crate::layer::write`]).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 0: not set, one per CPU.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the thread count for the rest of the process (`None`: one per CPU).
pub fn set(threads: Option<NonZeroUsize>) {
    THREADS.store(threads.map_or(0, NonZeroUsize::get), Ordering::Relaxed);
}

/// The most threads any one job starts, whatever was set: a library caller's huge count
/// would overflow queue sizes or fail to spawn.
const MAX: usize = 1024;

/// The thread count to use.
pub fn get() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    }
    .min(MAX)
}
