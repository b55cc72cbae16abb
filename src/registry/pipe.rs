//! A writer on a thread of its own: a download hands its bytes over in 256 KiB buffers and
//! goes back to the socket, while the other thread hashes and writes them. On two cores the
//! hashing then costs no wall time.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

const CHUNK: usize = crate::ioext::FILE_WRITE_MAX;
/// Buffers in flight: enough to ride out a slow write, bounded so memory is too.
const DEPTH: usize = 4;

/// Runs `produce` with a writer whose bytes reach `consumer` on another thread, in order.
/// Returns what `produce` returned and the consumer back (to finish it), or the first error
/// of either side (the consumer's, made an `E` by `consumer_error`, when the producer failed
/// only because the consumer stopped).
pub(crate) fn pipelined<W, T, E>(
    consumer: W,
    produce: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    consumer_error: impl FnOnce(io::Error) -> E,
) -> Result<(T, W), E>
where
    W: Write + Send,
{
    let (to_writer, from_reader) = sync_channel::<Vec<u8>>(DEPTH);
    let (recycle, recycled) = sync_channel::<Vec<u8>>(DEPTH + 1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || drain(consumer, from_reader, recycle));
        let mut sender = Sender {
            buffer: Vec::with_capacity(CHUNK),
            to_writer: Some(to_writer),
            recycled,
        };
        let produced = produce(&mut sender);
        let flushed = sender.send();
        // Closing the channel ends the writer's loop.
        sender.to_writer = None;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the blob writer thread panicked")));
        match (produced, written) {
            (_, Err(e)) => Err(consumer_error(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(t), Ok(w)) => match flushed {
                Ok(()) => Ok((t, w)),
                Err(e) => Err(consumer_error(e)),
            },
        }
    })
}

fn drain<W: Write>(
    mut consumer: W,
    chunks: Receiver<Vec<u8>>,
    recycle: SyncSender<Vec<u8>>,
) -> io::Result<W> {
    for chunk in chunks {
        consumer.write_all(&chunk)?;
        let _ = recycle.try_send(chunk);
    }
    consumer.flush()?;
    Ok(consumer)
}

struct Sender {
    buffer: Vec<u8>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
}

impl Sender {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let full = std::mem::replace(&mut self.buffer, next);
        match &self.to_writer {
            Some(tx) => tx
                .send(full)
                .map_err(|_| io::Error::other("the blob writer stopped")),
            None => Err(io::Error::other("the blob writer is closed")),
        }
    }
}

impl Write for Sender {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = room.min(bytes.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_of_either_side_surface() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let ((), out) = pipelined(
            Vec::new(),
            |w| -> io::Result<()> {
                for piece in data.chunks(77_777) {
                    w.write_all(piece)?;
                }
                Ok(())
            },
            |e| e,
        )
        .unwrap();
        assert_eq!(out, data);

        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = pipelined(
            Failing,
            |w| -> io::Result<()> {
                for _ in 0..100 {
                    w.write_all(&[0u8; 1 << 20])?;
                }
                Ok(())
            },
            |e| e,
        )
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "disk full");

        let err = pipelined(
            Vec::new(),
            |_| -> io::Result<()> { Err(io::Error::other("reset")) },
            |e| e,
        )
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "reset");
    }
}
