//! A layer's tar read on two threads: a second thread reads the blob (verifying its size and
//! digest) and decompresses it while the caller's thread parses the tar and does the work,
//! so inflating and writing overlap (as unpack does).

use std::io;
use std::sync::mpsc;

use crate::error::Result;
use crate::ioext::{read_full, ChannelReader};
use crate::layer::tarstream::TarStream;
use crate::layer::Compression;
use crate::layout::walk::blob_ref;
use crate::layout::Layout;
use crate::spec::Descriptor;

use super::tree::layer_error;

/// Uncompressed bytes cross in chunks this size, at most [`IN_FLIGHT`] waiting: memory stays
/// flat whatever the layer's size.
const CHUNK: usize = 256 << 10;
const IN_FLIGHT: usize = 8;

/// The tar of a layer being read: what [`read_layer`] hands its reader.
pub(crate) type LayerTar = TarStream<ChannelReader>;

/// Runs `consume` on the tar of layer `desc`, then reads the layer to its end, so the blob
/// reader has checked every byte. An error of the blob (its digest, its compression) wins
/// over the one `consume` met because of it.
pub(crate) fn read_layer<T>(
    layout: &Layout,
    desc: &Descriptor,
    compression: Compression,
    consume: impl FnOnce(&mut LayerTar) -> Result<T>,
) -> Result<T> {
    let blob = blob_ref(desc, &format!("layer {}", desc.digest))?;
    let reader = layout.open_blob(&blob)?;
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<()> {
            let mut decoder = compression
                .decoder(reader)
                .map_err(|e| layer_error(desc, e))?;
            loop {
                let mut chunk = vec![0u8; CHUNK];
                match read_full(&mut decoder, &mut chunk) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        chunk.truncate(n);
                        // A closed channel: the reader stopped, with its own result.
                        if tx.send(Ok(chunk)).is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(layer_error(desc, e));
                    }
                }
            }
        });
        let mut tar = TarStream::new(ChannelReader::new(rx));
        let result = consume(&mut tar);
        let drained = match result {
            Ok(_) => io::copy(&mut tar.into_inner(), &mut io::sink())
                .map(drop)
                .map_err(|e| layer_error(desc, e)),
            Err(_) => {
                drop(tar);
                Ok(())
            }
        };
        let produced = match producer.join() {
            Ok(produced) => produced,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        produced?;
        drained?;
        result
    })
}
