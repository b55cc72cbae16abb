//! gzip on every core with output that does not depend on the number of threads: the stream
//! is cut into fixed-size blocks, each compressed on its own as raw deflate primed with the
//! previous block's last 32 KiB and ended with a sync flush (the last with a finish), then
//! joined in order under one gzip header and a trailer whose CRC is combined from the
//! blocks'. This is pigz's scheme; any gzip reader reads the result as one member.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use flate2::{Compress, Crc, FlushCompress, Status};

/// The deflate window: how much of the previous block primes the next.
const WINDOW: usize = 32 << 10;

/// A fixed gzip header: no name, no time, OS "unknown", so identical input gives identical
/// bytes anywhere.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    index: usize,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

type Done = (usize, io::Result<(Vec<u8>, Crc)>);

/// Compresses the blocks `blocks` yields (each is `hash`ed first, on this thread) into `out`
/// as one gzip stream, using `threads` compressing threads.
pub fn compress<I, W>(
    blocks: I,
    out: &mut W,
    level: u32,
    threads: usize,
    mut hash: impl FnMut(&[u8]),
) -> io::Result<()>
where
    I: IntoIterator<Item = Vec<u8>>,
    W: Write,
{
    out.write_all(&HEADER)?;
    let mut crc = Crc::new();
    let mut total: u64 = 0;
    std::thread::scope(|scope| -> io::Result<()> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        for _ in 0..threads.max(1) {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let job = match job_rx.lock().expect("no worker panics holding it").recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let result =
                    deflate_block(level, &job.dictionary, &job.data, job.last).map(|bytes| {
                        let mut c = Crc::new();
                        c.update(&job.data);
                        (bytes, c)
                    });
                if done_tx.send((job.index, result)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut finished: BTreeMap<usize, (Vec<u8>, Crc)> = BTreeMap::new();
        let mut next_to_write = 0;
        let mut write_ready = |finished: &mut BTreeMap<usize, (Vec<u8>, Crc)>,
                               next: &mut usize,
                               out: &mut W|
         -> io::Result<()> {
            while let Some((bytes, block_crc)) = finished.remove(next) {
                out.write_all(&bytes)?;
                crc.combine(&block_crc);
                *next += 1;
            }
            Ok(())
        };
        let mut dispatched = 0;
        let mut pending: Option<Vec<u8>> = None;
        let mut dictionary = Vec::new();
        let mut dispatch =
            |data: Vec<u8>, last: bool, dictionary: &mut Vec<u8>| -> io::Result<()> {
                let next_dictionary = data[data.len().saturating_sub(WINDOW)..].to_vec();
                let job = Job {
                    index: dispatched,
                    dictionary: std::mem::replace(dictionary, next_dictionary),
                    data,
                    last,
                };
                dispatched += 1;
                job_tx
                    .send(job)
                    .map_err(|_| io::Error::other("the gzip workers stopped"))
            };
        for block in blocks {
            hash(&block);
            total += block.len() as u64;
            if let Some(previous) = pending.replace(block) {
                dispatch(previous, false, &mut dictionary)?;
            }
            while let Ok((index, result)) = done_rx.try_recv() {
                finished.insert(index, result?);
            }
            write_ready(&mut finished, &mut next_to_write, out)?;
        }
        dispatch(pending.take().unwrap_or_default(), true, &mut dictionary)?;
        drop(job_tx);
        for (index, result) in done_rx.iter() {
            finished.insert(index, result?);
            write_ready(&mut finished, &mut next_to_write, out)?;
        }
        Ok(())
    })?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    Ok(())
}

/// One block as raw deflate, primed with `dictionary`, ended by a sync flush (or, for the
/// last block, by the end-of-stream block).
fn deflate_block(level: u32, dictionary: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            _ if !last && all_in && room_left => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..1_500_000u32)
            .map(|i| ((i / 7) ^ (i >> 11)) as u8)
            .collect()
    }

    fn gz(data: &[u8], block: usize, threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        compress(
            data.chunks(block).map(<[u8]>::to_vec),
            &mut out,
            6,
            threads,
            |_| {},
        )
        .unwrap();
        out
    }

    #[test]
    fn any_gzip_reader_gets_the_input_back() {
        let data = sample();
        let packed = gz(&data, 128 << 10, 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(packed.len() < data.len() / 3);
        let mut empty = Vec::new();
        flate2::read::GzDecoder::new(&gz(&[], 128 << 10, 2)[..])
            .read_to_end(&mut empty)
            .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let data = sample();
        let one = gz(&data, 128 << 10, 1);
        assert_eq!(one, gz(&data, 128 << 10, 2));
        assert_eq!(one, gz(&data, 128 << 10, 5));
    }
}
