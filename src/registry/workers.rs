//! Blobs moved several at a time, for pull and push alike: worker threads take the next
//! blob, count its bytes and hand them to the calling thread in steps of a few MiB (a message
//! per read woke it thousands of times a second for nothing it could show), which draws the
//! progress; the first failure stops the others from starting new blobs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::error::{Error, Result};
use crate::transfer::Ticker;

/// Bytes a worker counts before it reports them.
const PROGRESS_STEP: u64 = 4 << 20;

enum Message<T> {
    Bytes(u64),
    Done(usize, Result<T>),
}

/// Runs `work` on every item, `jobs` at a time; `work` reports bytes through its callback.
/// `done` is called on this thread for each item that succeeded, in the order they finish.
/// Returns the results in the items' order, or the first error.
pub(crate) fn each<I: Sync, T: Send>(
    items: &[I],
    jobs: usize,
    work: impl Fn(&I, &mut dyn FnMut(u64)) -> Result<T> + Sync,
    mut done: impl FnMut(&mut Ticker<'_>, usize, &T),
    ticker: &mut Ticker<'_>,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Message<T>>();
    let mut results: Vec<Option<T>> = items.iter().map(|_| None).collect();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(items.len()) {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut unsent = 0u64;
                let result = work(&items[i], &mut |n| {
                    unsent += n;
                    if unsent >= PROGRESS_STEP {
                        let _ = tx.send(Message::Bytes(std::mem::take(&mut unsent)));
                    }
                });
                if unsent > 0 {
                    let _ = tx.send(Message::Bytes(unsent));
                }
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                let _ = tx.send(Message::Done(i, result));
            });
        }
        drop(tx);
        for message in rx {
            match message {
                Message::Bytes(n) => ticker.advance(n),
                Message::Done(i, Ok(t)) => {
                    done(ticker, i, &t);
                    results[i] = Some(t);
                }
                Message::Done(_, Err(e)) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    results
        .into_iter()
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| Error::Unsupported("a blob was left out of the transfer".into()))
}
