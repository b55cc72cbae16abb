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
/// An unnamed file for holding `len` bytes a while (a file read out of a layer, held until
/// the layer verified, before it is printed). Up to [`SCRATCH_IN_MEMORY`] it is in memory
/// (memfd), so the common case needs no scratch directory; a bigger one goes where the
/// system keeps big scratch data (`TMPDIR`), not into a memory limit.
pub(crate) fn scratch_file(len: u64) -> io::Result<std::fs::File> {
    use rustix::fs::{memfd_create, MemfdFlags};
    if len <= SCRATCH_IN_MEMORY {
        if let Ok(fd) = memfd_create("strata-scratch", MemfdFlags::CLOEXEC) {
            return Ok(std::fs::File::from(fd));
        }
    }
    tempfile::tempfile()
}

/// See [`scratch_file`].
pub(crate) const SCRATCH_IN_MEMORY: u64 = 64 << 20;

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

/// How far a file's writes get ahead of its writeback before strata asks the kernel to
/// start writing them out.
const WRITEBACK_STEP: u64 = 4 << 20;
/// Writeback is asked for whole 64 KiB blocks only: a page submitted half-filled would be
/// written twice, and on a device with stable pages the next write into it would wait.
const WRITEBACK_ALIGN: u64 = 64 << 10;
/// How far behind the last write strata waits for the writeback it asked for.
const WAIT_LAG: u64 = 4 * WRITEBACK_STEP;

/// A file writer for large streams that must reach the disk anyway (every blob is fsynced
/// before it is published): every [`WRITEBACK_STEP`] bytes it starts the kernel's writeback
/// of what it wrote, and waits for the writeback [`WAIT_LAG`] behind. With plenty of memory
/// and the default dirty ratios nothing reaches the disk before the fsync, so a large blob
/// was downloaded (or built) first and written out after; started early, the disk works
/// while the bytes still come in, and the fsync waits for the tail only.
///
/// The pages stay in the page cache: a pulled or built blob is often read next (unpack,
/// push), and dropping them behind (`fadvise`) made a pull followed by an unpack slower
/// than it made the pull faster (see the README's registry figures).
///
/// A file shorter than a step is left alone. Where `sync_file_range` is missing (another
/// system, a file system without it) it writes plainly. A write error the kernel reports
/// while it waits for the writeback fails the write: it reports such an error once per open
/// file, so the fsync after it would not see it again.
pub(crate) struct EarlyWriteback<W> {
    inner: W,
    written: u64,
    /// Where the writeback not yet asked for starts.
    started: u64,
    /// Where the writeback not yet waited for starts.
    waited: u64,
    /// Until the system says it cannot.
    hints: bool,
}

impl<W> EarlyWriteback<W> {
    pub(crate) fn new(inner: W) -> EarlyWriteback<W> {
        EarlyWriteback {
            inner,
            written: 0,
            started: 0,
            waited: 0,
            hints: cfg!(target_os = "linux"),
        }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: std::os::fd::AsFd> EarlyWriteback<W> {
    fn hint(&mut self) -> io::Result<()> {
        let end = self.written - self.written % WRITEBACK_ALIGN;
        writeback::start(self.inner.as_fd(), self.started, end - self.started)?;
        self.started = end;
        if self.started - self.waited >= WAIT_LAG + WRITEBACK_STEP {
            // Its writeback was asked for WAIT_LAG ago: waiting for it seldom waits.
            let upto = self.started - WAIT_LAG;
            writeback::finish(self.inner.as_fd(), self.waited, upto - self.waited)?;
            self.waited = upto;
        }
        Ok(())
    }
}

impl<W: io::Write + std::os::fd::AsFd> io::Write for EarlyWriteback<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.hints && self.written - self.started >= WRITEBACK_STEP {
            if let Err(e) = self.hint() {
                if !writeback::unsupported(&e) {
                    return Err(e);
                }
                self.hints = false;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(target_os = "linux")]
mod writeback {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};

    /// Asks the kernel to start writing `len` bytes at `offset` out, and returns at once
    /// (unless the device's queue is full).
    pub(super) fn start(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE)
    }

    /// Waits until `len` bytes at `offset` are written out (asking for any not asked yet).
    pub(super) fn finish(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(
            fd,
            offset,
            len,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    }

    /// An error that says the file (or the system) does not do this, rather than that a
    /// write failed.
    pub(super) fn unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
        )
    }

    fn sync_file_range(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: u64,
        flags: libc::c_uint,
    ) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        // SAFETY: sync_file_range takes no pointers, and `fd` is borrowed, so it is open for
        // the whole call. (rustix does not wrap this system call.)
        #[allow(unsafe_code)]
        let done = unsafe { libc::sync_file_range(fd.as_raw_fd(), offset, len, flags) };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Never called: `hints` starts false on other systems.
#[cfg(not(target_os = "linux"))]
mod writeback {
    use std::io;
    use std::os::fd::BorrowedFd;

    pub(super) fn start(_fd: BorrowedFd<'_>, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn finish(_fd: BorrowedFd<'_>, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn unsupported(_e: &io::Error) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn early_writeback_keeps_every_byte_in_order() {
        let data: Vec<u8> = (0..(WAIT_LAG + 5 * WRITEBACK_STEP + 12_345))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut out = EarlyWriteback::new(tempfile::tempfile().unwrap());
        for piece in data.chunks(100_003) {
            out.write_all(piece).unwrap();
        }
        assert_eq!(out.written, data.len() as u64);
        // Writeback went in aligned steps, and was waited for behind them.
        if cfg!(target_os = "linux") {
            assert_eq!(out.started % WRITEBACK_ALIGN, 0);
            assert!(out.started + WRITEBACK_STEP > out.written);
            assert!(out.waited > 0 && out.waited + WAIT_LAG <= out.started);
        }
        let mut file = out.into_inner();
        file.rewind().unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert!(
            back == data,
            "the file's bytes differ from what was written"
        );
    }
}
