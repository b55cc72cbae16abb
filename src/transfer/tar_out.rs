//! A deterministic tar writer for archives: ustar headers with nothing from the machine in
//! them (mode 0644 or 0755, owner 0:0, no user or group names, one fixed mtime), a PAX
//! `path` record only for names ustar cannot hold (sha512 blobs), content copied through a
//! large buffer and checked to be exactly the size the header announced.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// A failed write to the archive, told apart from a failed read of what goes in it: a full
/// disk is the archive's problem, not the source blob's.
#[derive(Debug)]
pub(crate) struct ArchiveWrite(pub io::Error);

impl std::fmt::Display for ArchiveWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ArchiveWrite {}

fn archive_write(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), ArchiveWrite(e))
}

/// The archive's own write error inside `e`, if that is what `e` is.
pub(crate) fn as_archive_write(e: io::Error) -> Result<io::Error, io::Error> {
    if e.get_ref().is_some_and(|inner| inner.is::<ArchiveWrite>()) {
        let inner = e.into_inner().expect("checked").downcast::<ArchiveWrite>();
        Ok(inner.expect("checked").0)
    } else {
        Err(e)
    }
}

/// Writes tar members to `out`.
pub(crate) struct TarOut<W: Write> {
    out: W,
    mtime: u64,
    buffer: Vec<u8>,
    /// Bytes written, headers and padding included.
    pub written: u64,
}

impl<W: Write> TarOut<W> {
    /// A writer whose every member has modification time `mtime` (seconds since the epoch).
    pub fn new(out: W, mtime: u64) -> TarOut<W> {
        TarOut {
            out,
            mtime,
            buffer: vec![0; 1 << 20],
            written: 0,
        }
    }

    /// A directory member (`name` without the trailing slash).
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.header(&format!("{name}/"), tar::EntryType::Directory, 0o755, 0)
    }

    /// A regular file member from bytes in memory.
    pub fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.file(name, data.len() as u64, &mut &data[..], &mut |_| {})
    }

    /// A regular file member of `size` bytes read from `data`, which must give exactly that
    /// many bytes. `tick` is told how many bytes were copied, as they are.
    pub fn file(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        tick: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, 0o644, size)?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name}: content ended {left} bytes short of {size}"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out
                .write_all(&self.buffer[..n])
                .map_err(archive_write)?;
            left -= n as u64;
            tick(n as u64);
        }
        // The source must end here too: a longer source is not what the header says, and a
        // verifying reader checks its digest only when it reaches its end.
        let mut probe = [0u8; 1];
        loop {
            match data.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{name}: content is longer than {size} bytes"),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.written += size;
        self.pad(size)
    }

    /// The end-of-archive marker (two zero blocks); returns the output, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.written += 2 * BLOCK as u64;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self, name: &str, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<()> {
        let mut header = self.blank(kind, mode, size);
        if header.set_path(name).is_err() {
            // Too long for ustar's name and prefix fields: a PAX record carries the name,
            // and the header keeps a truncated one for readers that ignore PAX.
            let mut record = Vec::new();
            pax_record(&mut record, "path", name.as_bytes());
            let mut pax = self.blank(tar::EntryType::XHeader, 0o644, record.len() as u64);
            let pax_name = "PaxHeader";
            pax.set_path(pax_name)?;
            pax.set_cksum();
            self.out.write_all(pax.as_bytes())?;
            self.out.write_all(&record)?;
            self.written += (BLOCK + record.len()) as u64;
            self.pad(record.len() as u64)?;
            let cut = &name.as_bytes()[name.len().saturating_sub(99)..];
            header.as_old_mut().name[..cut.len()].copy_from_slice(cut);
        }
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.written += BLOCK as u64;
        Ok(())
    }

    fn blank(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_size(size);
        header
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
            self.written += (BLOCK - rem) as u64;
        }
        Ok(())
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, whose length counts itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_round_trip_through_a_tar_reader() {
        let long = format!("blobs/sha512/{}", "a".repeat(128));
        let mut tar = TarOut::new(Vec::new(), 0);
        tar.dir("blobs").unwrap();
        tar.bytes("oci-layout", b"{}").unwrap();
        tar.bytes(&long, b"x").unwrap();
        let bytes = tar.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(names, ["blobs/", "oci-layout", long.as_str()]);
    }

    #[test]
    fn content_must_be_the_announced_size() {
        let mut tar = TarOut::new(Vec::new(), 0);
        assert!(tar.file("a", 3, &mut &b"ab"[..], &mut |_| {}).is_err());
        let mut tar = TarOut::new(Vec::new(), 0);
        assert!(tar.file("a", 1, &mut &b"ab"[..], &mut |_| {}).is_err());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut r = Vec::new();
        pax_record(&mut r, "path", &[b'a'; 90]);
        let s = String::from_utf8(r.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
    }
}
