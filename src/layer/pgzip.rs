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
        for started in 0..threads.max(1) {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            // A machine out of thread slots gives fewer workers, not a panic; none at all is
            // an error.
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || loop {
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
            match spawned {
                Ok(_) => {}
                Err(_) if started > 0 => break,
                Err(e) => return Err(e),
            }
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
    if looks_incompressible(data) {
        return Ok(stored_blocks(data, last));
    }
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

/// True for data deflate cannot shrink: bytes spread evenly (order-0 entropy above 7.9 bits
/// per byte) and a fast deflate of a sample saving under 3% (compressed archives, media,
/// encrypted blobs). Such blocks
/// are stored as they are, which saves the match search that is most of gzip's time on them.
/// A pure function of the bytes, so the output stays deterministic.
fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    // Evenly spread bytes can still repeat (tables, sequences): a quick deflate of a sample
    // decides.
    entropy > 7.9 && {
        let sample = &data[..data.len().min(16 << 10)];
        let mut c = Compress::new(flate2::Compression::fast(), false);
        let mut out = Vec::with_capacity(sample.len() + 1024);
        c.compress_vec(sample, &mut out, FlushCompress::Finish)
            .is_ok()
            && out.len() * 100 >= sample.len() * 97
    }
}

/// `data` as deflate stored blocks (at most 65,535 bytes each). The stream is byte-aligned
/// here (the previous block ended with a sync flush), so each block is a header byte
/// (BFINAL, BTYPE 00), LEN, NLEN and the bytes.
fn stored_blocks(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 10);
    let mut chunks = data.chunks(65535).peekable();
    while let Some(chunk) = chunks.next() {
        let final_block = last && chunks.peek().is_none();
        out.push(u8::from(final_block));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    if !last {
        // What a sync flush ends with, so every block ends the same way whichever path made it.
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
    }
    out
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
    fn incompressible_blocks_are_stored_and_read_back() {
        // A xorshift stream: no byte value is favoured, so it is stored, not deflated.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(looks_incompressible(&noise[..128 << 10]));
        assert!(!looks_incompressible(&sample()[..128 << 10]));
        let mut mixed = sample();
        mixed.extend_from_slice(&noise);
        mixed.extend_from_slice(&sample()[..1000]);
        for data in [&noise[..], &mixed[..], &noise[..200_000]] {
            let packed = gz(data, 128 << 10, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
            let out = std::process::Command::new("gzip")
                .arg("-t")
                .stdin(std::process::Stdio::piped())
                .spawn();
            if let Ok(mut child) = out {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&packed).unwrap();
                assert!(
                    child.wait().unwrap().success(),
                    "gzip -t refused the stream"
                );
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let data = sample();
        let one = gz(&data, 128 << 10, 1);
        assert_eq!(one, gz(&data, 128 << 10, 2));
        assert_eq!(one, gz(&data, 128 << 10, 5));
    }
}
