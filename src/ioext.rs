//! Small I/O helpers shared by the streaming code.

use std::io::{self, Read};
use std::sync::mpsc;

/// Reads until `buf` is full or the input ends; returns how much was read (less than
/// `buf.len()` only at the end of the input).
pub(crate) fn read_full(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The receiving end of a channel of byte chunks, read as one stream: a pipeline's second
/// thread. A chunk that is an error fails the read; a closed channel is the end.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<io::Result<Vec<u8>>>) -> ChannelReader {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Replaces the file `path` with what `write` produces: a temp file beside it, fsynced, then
/// renamed over it and the directory fsynced, so a reader (or a process killed midway) sees
/// the old content or the new, never a mix. The new file is mode 0644.
pub(crate) fn replace_file(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn io::Write) -> crate::Result<()>,
) -> crate::Result<()> {
    replace_file_with_mode(path, 0o644, write)
}

/// [`replace_file`] with the new file's permission bits chosen: a file holding secrets must
/// never be readable by others, not even between the write and a later chmod.
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
pub(crate) fn replace_file_with_mode(
    path: &std::path::Path,
    mode: u32,
    write: impl FnOnce(&mut dyn io::Write) -> crate::Result<()>,
) -> crate::Result<()> {
    use crate::error::IoContext;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let prefix = temp_prefix_beside(path)?;
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .at(dir)?;
    let mut out = io::BufWriter::new(tmp);
    write(&mut out)?;
    let tmp = out.into_inner().map_err(|e| e.into_error()).at(path)?;
    let file = tmp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.sync_all())
        .at(path)?;
    tmp.persist(path).map_err(|e| e.error).at(path)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// The longest file name most file systems take (Linux's NAME_MAX).
pub(crate) const NAME_MAX: usize = 255;

/// The start of a temp file's name beside `path` (`.NAME.`), the name cut so that a random
/// part and a suffix still fit in [`NAME_MAX`]; an error naming `path` when its own name is
/// too long to exist, said before a temp name's failure could name the temp file instead.
pub fn temp_prefix_beside(path: &std::path::Path) -> crate::Result<String> {
    let name = path.file_name().unwrap_or_default();
    if name.len() > NAME_MAX {
        return Err(name_too_long(path, name));
    }
    let name = name.to_string_lossy();
    // Room for ".", ".", tempfile's 6 random characters and ".tmp", with some to spare.
    let mut cut = name.len().min(NAME_MAX - 32);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok(format!(".{}.", &name[..cut]))
}

/// The error for a file name longer than [`NAME_MAX`].
pub(crate) fn name_too_long(path: &std::path::Path, name: &std::ffi::OsStr) -> crate::Error {
    crate::Error::Invalid {
        what: path.display().to_string(),
        reason: format!(
            "cannot be created: its name is {} bytes long, and a file name has at most {NAME_MAX}",
            name.len()
        ),
    }
}

/// The largest `write` strata makes to a file. On the kernels these machines run, buffered
/// writes of 1 MiB into ext4's page cache intermittently took several times longer in the
/// kernel's copy than the same bytes in 256 KiB writes (a 560 MB pull: 2.6 s against 0.9 s,
/// nearly all of it system time), and smaller writes cost nothing measurable.
pub(crate) const FILE_WRITE_MAX: usize = 256 << 10;

/// A file writer whose every `write` is at most [`FILE_WRITE_MAX`] bytes (`write_all` loops).
pub struct CappedWrites<W>(pub W);

impl<W: io::Write> io::Write for CappedWrites<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(FILE_WRITE_MAX)])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
