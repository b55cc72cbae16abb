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

mod records;
mod sparse;

pub use sparse::SparseMap;
use sparse::{pax_sparse, PaxSparse};

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
    sparse: Option<Sparse>,
    stream: &'a mut TarStream<R>,
}

/// Where a sparse member's reader is in the file it expands to.
struct Sparse {
    map: SparseMap,
    /// The next region to start, or the one being read.
    next: usize,
    /// Logical position in the expanded file.
    pos: u64,
    /// Bytes of the current region still to read.
    region_left: u64,
}

impl Sparse {
    /// Steps into the region that starts here, if one does (skipping empty ones).
    fn settle(&mut self) {
        while self.region_left == 0 {
            match self.map.regions.get(self.next) {
                Some(&(offset, len)) if offset == self.pos => {
                    self.next += 1;
                    self.region_left = len;
                }
                _ => return,
            }
        }
    }

    /// Zero bytes from here to the next region (or the end).
    fn hole(&mut self) -> u64 {
        self.settle();
        if self.region_left > 0 {
            return 0;
        }
        let until = self
            .map
            .regions
            .get(self.next)
            .map_or(self.map.real_size, |r| r.0);
        until - self.pos
    }
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

    /// The underlying reader, positioned after the last entry read (for reading what
    /// follows the tar's end, e.g. to verify a blob to its last byte).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry; `None` at the end marker (a zero block) or at the end of the input.
    /// Global PAX headers (`g`) may hold only records that change nothing (see
    /// `records`): strata applies none.
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
                    let data = self.extension(header_size)?;
                    let global = PaxRecords::parse(&data)
                        .map_err(|why| invalid(format!("malformed PAX global header: {why}")))?;
                    let refused = global
                        .iter()
                        .find_map(|(k, _)| records::global_key_refused(k));
                    if let Some(why) = refused {
                        return Err(invalid(why));
                    }
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
                    let mut size = pax.number("size").map_err(invalid)?.unwrap_or(header_size);
                    let padding = padding(size);
                    let map = self.sparse_map(&header, &pax, &mut size)?;
                    // Sparse 0.1 and 1.0 store the member under a made-up name
                    // (`GNUSparseFile.N/...`) and its real one here.
                    let sparse_name = pax.bytes("GNU.sparse.name").map(<[u8]>::to_vec);
                    let path = match (sparse_name, pax.bytes("path"), long_name) {
                        (Some(p), _, _) => p,
                        (None, Some(p), _) => p.to_vec(),
                        (None, None, Some(p)) => p,
                        (None, None, None) => header.path_bytes().into_owned(),
                    };
                    let link = match (pax.bytes("linkpath"), long_link) {
                        (Some(p), _) => Some(p.to_vec()),
                        (None, Some(p)) => Some(p),
                        (None, None) => header.link_name_bytes().map(|l| l.into_owned()),
                    };
                    self.remaining = size;
                    self.padding = padding;
                    let sparse = map.map(|map| Sparse {
                        map,
                        next: 0,
                        pos: 0,
                        region_left: 0,
                    });
                    let size = sparse.as_ref().map_or(size, |s| s.map.real_size);
                    return Ok(Some(TarEntry {
                        header,
                        path,
                        link,
                        pax,
                        size,
                        sparse,
                        stream: self,
                    }));
                }
            }
        }
    }

    /// The next 512-byte block; `None` at a clean end.
    fn block(&mut self) -> io::Result<Option<[u8; BLOCK as usize]>> {
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
        Ok(Some(block))
    }

    /// The next header block, checksum verified; `None` at a zero block or a clean end.
    fn header(&mut self) -> io::Result<Option<tar::Header>> {
        let Some(block) = self.block()? else {
            return Ok(None);
        };
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

    /// The sparse map of a member storing `*stored` bytes, in whichever form it has; a 1.0
    /// map is read from the data, and `*stored` loses the bytes it took.
    fn sparse_map(
        &mut self,
        header: &tar::Header,
        pax: &PaxRecords,
        stored: &mut u64,
    ) -> io::Result<Option<SparseMap>> {
        let kind = header.entry_type();
        let from_pax = pax_sparse(pax, *stored)?;
        if kind == tar::EntryType::GNUSparse {
            if from_pax.is_some() {
                return Err(invalid(
                    "a sparse (S) member with GNU.sparse PAX records too".into(),
                ));
            }
            let map = SparseMap::from_gnu(header, *stored, || {
                self.block()?
                    .ok_or_else(|| invalid("the tar is cut short inside a sparse map".into()))
            })?;
            return Ok(Some(map));
        }
        let Some(from_pax) = from_pax else {
            return Ok(None);
        };
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(invalid(format!(
                "GNU.sparse records on a member of type {:?}, not a regular file",
                char::from(kind.as_byte())
            )));
        }
        match from_pax {
            PaxSparse::Map(map) => Ok(Some(map)),
            PaxSparse::InData { real_size } => {
                let mut data = (&mut self.inner).take(*stored);
                let (map, used) = SparseMap::from_data_prefix(&mut data, real_size, *stored)?;
                *stored -= used;
                Ok(Some(map))
            }
        }
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
        // A header may claim a size near u64::MAX: the sum saturates, and the skip then
        // finds the tar cut short, which it is.
        let n = self.remaining.saturating_add(self.padding);
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

    /// The data's length (PAX `size` when given); a sparse member's expanded length.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The sparse map, for a sparse member.
    pub fn sparse_map(&self) -> Option<&SparseMap> {
        self.sparse.as_ref().map(|s| &s.map)
    }

    /// For a sparse member, the zeros between the read position and the next stored data
    /// (0 elsewhere): a writer can seek over them and leave a hole.
    pub fn hole_ahead(&mut self) -> u64 {
        self.sparse.as_mut().map_or(0, Sparse::hole)
    }

    /// Moves the read position past [`Self::hole_ahead`]'s zeros.
    pub fn skip_hole(&mut self) {
        if let Some(s) = self.sparse.as_mut() {
            s.pos += s.hole();
        }
    }

    /// A device's numbers: star's `SCHILY.devmajor`/`devminor` when given (for numbers too
    /// large for the header), else the header's.
    pub fn device(&self) -> Result<(u32, u32), String> {
        let field =
            |key: &str, raw: std::ops::Range<usize>, header: io::Result<Option<u32>>| match self
                .pax
                .number(key)?
            {
                Some(n) => u32::try_from(n).map_err(|_| format!("PAX {key} {n} is too large")),
                None => blank_is_zero(&self.header.as_bytes()[raw], || {
                    header.map(|n| u64::from(n.unwrap_or_default()))
                })
                .map(|n| n as u32)
                .map_err(|e| format!("the header's device number: {e}")),
            };
        Ok((
            field("SCHILY.devmajor", 329..337, self.header.device_major())?,
            field("SCHILY.devminor", 337..345, self.header.device_minor())?,
        ))
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

impl<R: Read> TarEntry<'_, R> {
    /// Skips the stored data that was not read (a sparse member's holes cost nothing),
    /// failing where the tar is cut short.
    pub fn skip_data(&mut self) -> io::Result<()> {
        self.stream.skip_rest()
    }
}

impl<R: Read> Read for TarEntry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(sparse) = self.sparse.as_mut() else {
            return read_stored(self.stream, buf);
        };
        let hole = sparse.hole();
        if hole > 0 {
            let n = buf.len().min(usize::try_from(hole).unwrap_or(usize::MAX));
            buf[..n].fill(0);
            sparse.pos += n as u64;
            return Ok(n);
        }
        if sparse.region_left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(sparse.region_left).unwrap_or(usize::MAX));
        let n = read_stored(self.stream, &mut buf[..want])?;
        if n == 0 {
            return Err(invalid(
                "the tar is cut short inside an entry's data".into(),
            ));
        }
        sparse.pos += n as u64;
        sparse.region_left -= n as u64;
        Ok(n)
    }
}

/// Reads the current entry's stored bytes.
fn read_stored<R: Read>(stream: &mut TarStream<R>, buf: &mut [u8]) -> io::Result<usize> {
    if stream.remaining == 0 {
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

    /// An old GNU sparse member of `regions` (data "a", "b", ... of each region's length),
    /// with extension blocks past four regions.
    fn gnu_sparse(regions: &[(u64, u64)], real: u64, stored: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_path("s").unwrap();
        h.set_size(stored);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(real);
        let mut ext = Vec::new();
        for (i, (off, len)) in regions.iter().enumerate() {
            if i < 4 {
                gnu.sparse[i].set_offset(*off);
                gnu.sparse[i].set_length(*len);
            } else {
                if (i - 4) % 21 == 0 {
                    ext.push(tar::GnuExtSparseHeader::new());
                }
                let e = ext.last_mut().unwrap();
                e.sparse_mut()[(i - 4) % 21].set_offset(*off);
                e.sparse_mut()[(i - 4) % 21].set_length(*len);
            }
        }
        gnu.set_is_extended(!ext.is_empty());
        let n = ext.len();
        for (i, e) in ext.iter_mut().enumerate() {
            e.set_is_extended(i + 1 < n);
        }
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        for mut e in ext {
            out.extend_from_slice(e.as_mut_bytes());
        }
        let mut data: Vec<u8> = Vec::new();
        for (i, (_, len)) in regions.iter().enumerate() {
            data.extend(std::iter::repeat_n(b'a' + i as u8, *len as usize));
        }
        data.resize(data.len().div_ceil(512) * 512, 0);
        out.extend(data);
        out.extend([0u8; 1024]);
        out
    }

    #[test]
    fn old_gnu_sparse_members_expand() {
        let regions: Vec<(u64, u64)> = (0..30).map(|i| (i * 10 + 5, 2)).collect();
        let got = entries(&gnu_sparse(&regions, 400, 60)).unwrap();
        let mut want = vec![0u8; 400];
        for (i, (off, _)) in regions.iter().enumerate() {
            want[*off as usize] = b'a' + i as u8;
            want[*off as usize + 1] = b'a' + i as u8;
        }
        assert_eq!(got, [(b"s".to_vec(), want)]);
        // Maps that do not add up, overlap or run past the end are errors.
        assert!(entries(&gnu_sparse(&[(0, 4)], 10, 5)).is_err());
        assert!(entries(&gnu_sparse(&[(0, 4), (2, 4)], 10, 8)).is_err());
        assert!(entries(&gnu_sparse(&[(8, 4)], 10, 4)).is_err());
    }
}
