//! Reading a tar stream entry by entry, with strata's own handling of the extension headers
//! (PAX `x`, GNU long names `L`/`K`) and `tar::Header` for the 512-byte headers.
//!
//! Why not `tar::Archive::entries()`: it reads PAX records by splitting at newlines. For
//! the records that frame the stream (`size`) it silently falls back to the header's size
//! when a binary xattr value comes first, so the data of a large file is read as headers;
//! for `path`/`linkpath` it takes the first line that looks like a record, which a value
//! can forge. Here every PAX record is parsed by its length (see [`super::pax`]), one
//! parse decides the framing and the names, and a malformed record is an error.

use std::io::{self, Read};

use super::pax::PaxRecords;

const BLOCK: u64 = 512;
/// Extension headers are read into memory: more than this is not a real tar's.
const EXTENSION_LIMIT: u64 = 16 << 20;

/// A tar stream.
pub struct TarStream<R> {
    inner: R,
    /// Data bytes of the current entry not yet read, then its padding.
    remaining: u64,
    padding: u64,
}

/// One entry: its header, the names and PAX records that apply to it, and its data (read
/// through `Read`).
pub struct TarEntry<'a, R> {
    header: tar::Header,
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    pax: PaxRecords,
    size: u64,
    stream: &'a mut TarStream<R>,
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl<R: Read> TarStream<R> {
    /// Reads `inner` as a tar.
    pub fn new(inner: R) -> TarStream<R> {
        TarStream {
            inner,
            remaining: 0,
            padding: 0,
        }
    }

    /// The next entry; `None` at the end marker (a zero block) or at the end of the input.
    /// Global PAX headers (`g`) are skipped: strata applies none of their keys.
    pub fn next_entry(&mut self) -> io::Result<Option<TarEntry<'_, R>>> {
        self.skip_rest()?;
        let mut pax: Option<PaxRecords> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(header) = self.header()? else {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return Err(invalid(
                        "the tar ends after an extension header, without the entry it describes"
                            .into(),
                    ));
                }
                return Ok(None);
            };
            let kind = header.entry_type();
            let header_size = header
                .entry_size()
                .map_err(|e| invalid(format!("the header's size field: {e}")))?;
            let twice = |what: &str| invalid(format!("two {what} headers for one entry"));
            match kind {
                tar::EntryType::XHeader => {
                    if pax.is_some() {
                        return Err(twice("PAX extended"));
                    }
                    let data = self.extension(header_size)?;
                    let records = PaxRecords::parse(&data)
                        .map_err(|why| invalid(format!("malformed PAX extended header: {why}")))?;
                    pax = Some(records);
                }
                tar::EntryType::XGlobalHeader => {
                    self.extension(header_size)?;
                }
                tar::EntryType::GNULongName => {
                    if long_name.is_some() {
                        return Err(twice("GNU long name"));
                    }
                    long_name = Some(trim_nul(self.extension(header_size)?));
                }
                tar::EntryType::GNULongLink => {
                    if long_link.is_some() {
                        return Err(twice("GNU long link"));
                    }
                    long_link = Some(trim_nul(self.extension(header_size)?));
                }
                _ => {
                    let pax = pax.unwrap_or_default();
                    let size = pax.number("size").map_err(invalid)?.unwrap_or(header_size);
                    let path = match (pax.bytes("path"), long_name) {
                        (Some(p), _) => p.to_vec(),
                        (None, Some(p)) => p,
                        (None, None) => header.path_bytes().into_owned(),
                    };
                    let link = match (pax.bytes("linkpath"), long_link) {
                        (Some(p), _) => Some(p.to_vec()),
                        (None, Some(p)) => Some(p),
                        (None, None) => header.link_name_bytes().map(|l| l.into_owned()),
                    };
                    self.remaining = size;
                    self.padding = padding(size);
                    return Ok(Some(TarEntry {
                        header,
                        path,
                        link,
                        pax,
                        size,
                        stream: self,
                    }));
                }
            }
        }
    }

    /// The next header block, checksum verified; `None` at a zero block or a clean end.
    fn header(&mut self) -> io::Result<Option<tar::Header>> {
        let mut block = [0u8; BLOCK as usize];
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err(invalid("the tar is cut short inside a header".into())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|b| u32::from(*b))
            .sum::<u32>()
            + 8 * u32::from(b' ');
        let header = tar::Header::from_byte_slice(&block).clone();
        let recorded = header
            .cksum()
            .map_err(|e| invalid(format!("the header's checksum field: {e}")))?;
        if sum != recorded {
            return Err(invalid("tar header checksum mismatch".into()));
        }
        Ok(Some(header))
    }

    /// An extension header's data (and its padding), bounded.
    fn extension(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > EXTENSION_LIMIT {
            return Err(invalid(format!(
                "an extension header of {size} bytes (strata reads at most {EXTENSION_LIMIT})"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut self.inner).take(size).read_to_end(&mut data)?;
        if data.len() as u64 != size {
            return Err(invalid(
                "the tar is cut short inside an extension header".into(),
            ));
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Skips what the caller did not read of the last entry.
    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(n)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if skipped != n {
            return Err(invalid(
                "the tar is cut short inside an entry's data".into(),
            ));
        }
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nul(mut name: Vec<u8>) -> Vec<u8> {
    if name.last() == Some(&0) {
        name.pop();
    }
    name
}

impl<R> TarEntry<'_, R> {
    /// The 512-byte header as stored (PAX overrides are not written into it).
    pub fn header(&self) -> &tar::Header {
        &self.header
    }

    /// The path: PAX `path`, else a GNU long name, else the header's (with the ustar prefix).
    pub fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    /// The link target, found as the path is.
    pub fn link_name_bytes(&self) -> Option<&[u8]> {
        self.link.as_deref()
    }

    /// The PAX records that describe this entry.
    pub fn pax(&self) -> &PaxRecords {
        &self.pax
    }

    /// The data's length (PAX `size` when given).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The owner's uid (PAX `uid` when given).
    pub fn uid(&self) -> io::Result<u64> {
        match self.pax.number("uid").map_err(invalid)? {
            Some(id) => Ok(id),
            None => blank_is_zero(&self.header.as_old().uid, || self.header.uid()),
        }
    }

    /// The owner's gid (PAX `gid` when given).
    pub fn gid(&self) -> io::Result<u64> {
        match self.pax.number("gid").map_err(invalid)? {
            Some(id) => Ok(id),
            None => blank_is_zero(&self.header.as_old().gid, || self.header.gid()),
        }
    }
}

/// A numeric header field of only NULs and spaces is 0, as Go's archive/tar and GNU tar read
/// it (some writers leave ids blank); anything else is parsed by the tar crate.
fn blank_is_zero(field: &[u8], parse: impl FnOnce() -> io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parse()
    }
}

impl<R: Read> Read for TarEntry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stream = &mut *self.stream;
        if stream.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(stream.remaining).unwrap_or(usize::MAX));
        let n = stream.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(
                "the tar is cut short inside an entry's data".into(),
            ));
        }
        stream.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut stream = TarStream::new(bytes);
        let mut out = Vec::new();
        while let Some(mut e) = stream.next_entry()? {
            let path = e.path_bytes().to_vec();
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((path, data));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(80) + "f";
        for (name, data) in [("a", &b"hello"[..]), (long.as_str(), b"x"), ("empty", b"")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.append_pax_extensions([("SCHILY.xattr.user.x", &b"\n\0\n"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        b.append_data(&mut h, "px", &b"abc"[..]).unwrap();
        let got = entries(&b.into_inner().unwrap()).unwrap();
        let names: Vec<&[u8]> = got.iter().map(|(p, _)| p.as_slice()).collect();
        assert_eq!(names, [b"a", long.as_bytes(), b"empty", b"px"]);
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[3].1, b"abc");
    }

    #[test]
    fn damaged_streams_are_errors() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(700);
        b.append_data(&mut h, "a", &[1u8; 700][..]).unwrap();
        let whole = b.into_inner().unwrap();
        assert!(entries(&whole[..600]).is_err(), "cut in the data");
        assert!(entries(&whole[..100]).is_err(), "cut in the header");
        let mut bad = whole.clone();
        bad[0] ^= 1;
        assert!(entries(&bad).is_err(), "checksum");
        // An extension header with nothing after it.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", &b"x"[..])]).unwrap();
        assert!(entries(&b.into_inner().unwrap()).is_err());
    }
}
