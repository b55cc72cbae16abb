//! Sparse members, in every form GNU tar and libarchive write them: the old GNU `S` header
//! (four regions in the header, 21 more per extension block, the real size in its own
//! field) and the PAX forms GNU.sparse 0.0 (repeated `offset`/`numbytes` records), 0.1
//! (`map`, a comma-separated list) and 1.0 (the map as decimal lines at the start of the
//! data, padded to a block; name and real size in `GNU.sparse.name`/`realsize`).
//!
//! A member's stored data is its regions' bytes back to back; everything between regions
//! reads as zeros. The map is checked before any byte is used: regions in order, not
//! overlapping, inside the real size, and their lengths adding up to the stored data.

use std::io::{self, Read};

use super::{invalid, BLOCK, EXTENSION_LIMIT};
use crate::layer::pax::PaxRecords;

/// Where a sparse member's data goes in the file it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    /// (offset, length) of each data region, in order.
    pub regions: Vec<(u64, u64)>,
    /// The file's length.
    pub real_size: u64,
}

/// Which PAX form a member uses, if any; `None` when its records say nothing of sparseness.
pub(super) enum PaxSparse {
    /// The map is complete (0.0, 0.1).
    Map(SparseMap),
    /// 1.0: the map is at the start of the data.
    InData { real_size: u64 },
}

impl SparseMap {
    /// Checks `regions` against `real_size` and the `stored` bytes that hold them.
    fn checked(regions: Vec<(u64, u64)>, real_size: u64, stored: u64) -> io::Result<SparseMap> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(offset, len) in &regions {
            let region_end = offset
                .checked_add(len)
                .ok_or_else(|| invalid(format!("sparse region {offset}+{len} overflows")))?;
            if offset < end || region_end > real_size {
                return Err(invalid(format!(
                    "sparse region {offset}+{len} overlaps the one before it or runs past \
                     the file's size {real_size}"
                )));
            }
            end = region_end;
            total += len;
        }
        if total != stored {
            return Err(invalid(format!(
                "the sparse map's regions hold {total} bytes but the member stores {stored}"
            )));
        }
        Ok(SparseMap { regions, real_size })
    }

    /// The old GNU `S` header's map; its extension blocks are read with `next_block`.
    pub(super) fn from_gnu(
        header: &tar::Header,
        stored: u64,
        mut next_block: impl FnMut() -> io::Result<[u8; BLOCK as usize]>,
    ) -> io::Result<SparseMap> {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| invalid("a sparse (S) member without a GNU header".into()))?;
        let field = |what: &str, e: io::Error| invalid(format!("the sparse header's {what}: {e}"));
        let real_size = gnu.real_size().map_err(|e| field("real size", e))?;
        let mut regions = Vec::new();
        let mut push = |sparse: &tar::GnuSparseHeader| -> io::Result<()> {
            if !sparse.is_empty() {
                regions.push((
                    sparse.offset().map_err(|e| field("offset", e))?,
                    sparse.length().map_err(|e| field("length", e))?,
                ));
            }
            Ok(())
        };
        for s in &gnu.sparse {
            push(s)?;
        }
        let mut extended = gnu.is_extended();
        let mut blocks = 0u64;
        while extended {
            blocks += 1;
            if blocks * BLOCK > EXTENSION_LIMIT {
                return Err(invalid(format!(
                    "a sparse map of more than {EXTENSION_LIMIT} bytes of extension blocks"
                )));
            }
            let mut ext = tar::GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&next_block()?);
            for s in ext.sparse() {
                push(s)?;
            }
            extended = ext.is_extended();
        }
        SparseMap::checked(regions, real_size, stored)
    }

    /// 1.0's map at the start of the data: decimal lines (a count, then offset and length
    /// pairs), padded to a block. Returns the map and the bytes it took.
    pub(super) fn from_data_prefix(
        data: &mut impl Read,
        real_size: u64,
        stored: u64,
    ) -> io::Result<(SparseMap, u64)> {
        let mut lines = Lines {
            data,
            block: Vec::new(),
            at: 0,
            consumed: 0,
            stored,
        };
        let count = lines.number()?;
        if count > EXTENSION_LIMIT / 4 {
            return Err(invalid(format!("a sparse map of {count} regions")));
        }
        let mut regions = Vec::with_capacity(count as usize);
        for _ in 0..count {
            regions.push((lines.number()?, lines.number()?));
        }
        let consumed = lines.consumed;
        let map = SparseMap::checked(regions, real_size, stored - consumed)?;
        Ok((map, consumed))
    }
}

/// Reads the decimal lines of a 1.0 map a block at a time.
struct Lines<'a, R> {
    data: &'a mut R,
    block: Vec<u8>,
    at: usize,
    consumed: u64,
    stored: u64,
}

impl<R: Read> Lines<'_, R> {
    fn number(&mut self) -> io::Result<u64> {
        let mut digits = Vec::new();
        loop {
            if self.at == self.block.len() {
                if self.consumed + BLOCK > self.stored.min(EXTENSION_LIMIT) {
                    return Err(invalid(
                        "the sparse map at the start of the data does not end".into(),
                    ));
                }
                self.block = vec![0; BLOCK as usize];
                self.data.read_exact(&mut self.block)?;
                self.consumed += BLOCK;
                self.at = 0;
            }
            let b = self.block[self.at];
            self.at += 1;
            if b == b'\n' {
                break;
            }
            if !b.is_ascii_digit() || digits.len() >= 20 {
                return Err(invalid(format!(
                    "the sparse map at the start of the data has a bad number {:?}",
                    String::from_utf8_lossy(&digits)
                )));
            }
            digits.push(b);
        }
        decimal(&digits).ok_or_else(|| {
            invalid("the sparse map at the start of the data has an empty or huge number".into())
        })
    }
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The sparse form `pax` declares for a member storing `stored` bytes, if any.
pub(super) fn pax_sparse(pax: &PaxRecords, stored: u64) -> io::Result<Option<PaxSparse>> {
    let number = |key: &str| pax.number(key).map_err(invalid);
    match (number("GNU.sparse.major")?, number("GNU.sparse.minor")?) {
        (Some(1), Some(0)) => {
            let real_size = number("GNU.sparse.realsize")?.ok_or_else(|| {
                invalid("a GNU.sparse 1.0 member without GNU.sparse.realsize".into())
            })?;
            return Ok(Some(PaxSparse::InData { real_size }));
        }
        (None, None) => {}
        (major, minor) => {
            return Err(invalid(format!(
                "GNU.sparse format {}.{} (strata reads 0.0, 0.1 and 1.0)",
                major.map_or("?".into(), |n| n.to_string()),
                minor.map_or("?".into(), |n| n.to_string())
            )))
        }
    }
    let Some(real_size) = number("GNU.sparse.size")? else {
        if pax.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
            return Err(invalid(
                "GNU.sparse records without GNU.sparse.size or a format version".into(),
            ));
        }
        return Ok(None);
    };
    let mut numbers = Vec::new();
    if let Some(map) = pax.get("GNU.sparse.map") {
        // 0.1
        if !map.is_empty() {
            for n in map.split(|b| *b == b',') {
                numbers.push(
                    decimal(n)
                        .filter(|_| n.iter().all(u8::is_ascii_digit))
                        .ok_or_else(|| {
                            invalid(format!(
                                "GNU.sparse.map has a bad number {:?}",
                                String::from_utf8_lossy(n)
                            ))
                        })?,
                );
            }
        }
    } else {
        // 0.0: offset and numbytes records alternate, in order.
        for (key, value) in pax.iter() {
            if key == b"GNU.sparse.offset" || key == b"GNU.sparse.numbytes" {
                let want: &[u8] = if numbers.len() % 2 == 0 {
                    b"GNU.sparse.offset"
                } else {
                    b"GNU.sparse.numbytes"
                };
                if key != want {
                    return Err(invalid(
                        "GNU.sparse.offset and GNU.sparse.numbytes records do not alternate".into(),
                    ));
                }
                numbers.push(
                    decimal(value)
                        .filter(|_| value.iter().all(u8::is_ascii_digit))
                        .ok_or_else(|| {
                            invalid(format!(
                                "{} {:?} is not a number",
                                String::from_utf8_lossy(key),
                                String::from_utf8_lossy(value)
                            ))
                        })?,
                );
            }
        }
    }
    if numbers.len() % 2 != 0 {
        return Err(invalid(
            "the sparse map has an offset without a length".into(),
        ));
    }
    let regions: Vec<(u64, u64)> = numbers.chunks(2).map(|p| (p[0], p[1])).collect();
    if let Some(blocks) = number("GNU.sparse.numblocks")? {
        if blocks != regions.len() as u64 {
            return Err(invalid(format!(
                "GNU.sparse.numblocks says {blocks} regions, the map has {}",
                regions.len()
            )));
        }
    }
    Ok(Some(PaxSparse::Map(SparseMap::checked(
        regions, real_size, stored,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_checked() {
        assert!(SparseMap::checked(vec![(0, 4), (10, 2)], 12, 6).is_ok());
        assert!(
            SparseMap::checked(vec![(0, 4), (2, 2)], 12, 6).is_err(),
            "overlap"
        );
        assert!(
            SparseMap::checked(vec![(10, 4)], 12, 4).is_err(),
            "past the end"
        );
        assert!(
            SparseMap::checked(vec![(0, 4)], 12, 5).is_err(),
            "stored differs"
        );
        assert!(SparseMap::checked(vec![(u64::MAX, 4)], u64::MAX, 4).is_err());
    }

    #[test]
    fn data_prefix_maps() {
        let mut data = b"2\n0\n3\n10\n1\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcd");
        let (map, used) = SparseMap::from_data_prefix(&mut &data[..], 11, 516).unwrap();
        assert_eq!(used, 512);
        assert_eq!(map.regions, [(0, 3), (10, 1)]);
        let unterminated = vec![b'1'; 600];
        assert!(SparseMap::from_data_prefix(&mut &unterminated[..], 11, 600).is_err());
    }

    fn pax(records: &[(&str, &str)]) -> PaxRecords {
        PaxRecords(
            records
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn pax_forms() {
        let v00 = pax(&[
            ("GNU.sparse.size", "20"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "3"),
            ("GNU.sparse.offset", "10"),
            ("GNU.sparse.numbytes", "2"),
        ]);
        let v01 = pax(&[("GNU.sparse.size", "20"), ("GNU.sparse.map", "0,3,10,2")]);
        for p in [v00, v01] {
            match pax_sparse(&p, 5).unwrap() {
                Some(PaxSparse::Map(m)) => assert_eq!(m.regions, [(0, 3), (10, 2)]),
                _ => panic!("no map"),
            }
        }
        let v10 = pax(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "9"),
        ]);
        assert!(matches!(
            pax_sparse(&v10, 512),
            Ok(Some(PaxSparse::InData { real_size: 9 }))
        ));
        assert!(pax_sparse(&pax(&[("size", "3")]), 3).unwrap().is_none());
        for bad in [
            pax(&[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")]),
            pax(&[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")]),
            pax(&[("GNU.sparse.name", "x")]),
            pax(&[("GNU.sparse.size", "20"), ("GNU.sparse.map", "0,3,10")]),
            pax(&[("GNU.sparse.size", "20"), ("GNU.sparse.map", "0,3,x,2")]),
            pax(&[("GNU.sparse.size", "20"), ("GNU.sparse.map", "0,+3")]),
            pax(&[
                ("GNU.sparse.size", "20"),
                ("GNU.sparse.numblocks", "3"),
                ("GNU.sparse.map", "0,5"),
            ]),
            pax(&[
                ("GNU.sparse.size", "20"),
                ("GNU.sparse.numbytes", "5"),
                ("GNU.sparse.offset", "0"),
            ]),
        ] {
            assert!(pax_sparse(&bad, 5).is_err(), "{bad:?}");
        }
    }
}
