//! PAX extended header records, parsed as POSIX defines them: `"%d %s=%s\n"`, where the
//! decimal length counts the whole record, itself and the newline included. Values are
//! binary (xattrs: POSIX ACLs, file capabilities, IMA signatures hold any byte, `\n` and
//! NUL included), so a record ends where its length says, never at a newline; the `tar`
//! crate's iterator splits at `\n` and so fails on such values, or worse, reads records
//! out of a value.

/// Records, in order; for a key given twice the last one counts (POSIX: later records
/// override earlier ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaxRecords(pub Vec<(Vec<u8>, Vec<u8>)>);

impl PaxRecords {
    /// Parses a whole extended header's data. The error says which record is wrong and why.
    pub fn parse(data: &[u8]) -> Result<PaxRecords, String> {
        let mut records = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let (key, value, len) =
                record(&data[at..]).map_err(|why| format!("PAX record at byte {at}: {why}"))?;
            records.push((key.to_vec(), value.to_vec()));
            at += len;
        }
        Ok(PaxRecords(records))
    }

    /// The value of `key`, if any record sets it.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// `key`'s value as a decimal number (sizes, ids). An empty value means "no override"
    /// (POSIX), so `None`; anything else but digits is an error.
    pub fn number(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None | Some(b"") => Ok(None),
            Some(v) => decimal(v)
                .map(Some)
                .ok_or_else(|| format!("PAX {key} {:?} is not a number", show(v))),
        }
    }

    /// `key`'s value where non-empty (an empty value means "no override").
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every record, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }
}

/// One record at the start of `data`: key, value and the record's length.
fn record(data: &[u8]) -> Result<(&[u8], &[u8], usize), String> {
    let space = data
        .iter()
        .take(21)
        .position(|b| *b == b' ')
        .ok_or("no length followed by a space")?;
    let len = decimal(&data[..space]).ok_or_else(|| {
        format!(
            "the length {:?} is not a decimal number",
            show(&data[..space])
        )
    })?;
    let len = usize::try_from(len).map_err(|_| "the length is too large")?;
    if len <= space + 2 {
        return Err(format!("the length {len} is too short for a record"));
    }
    if len > data.len() {
        return Err(format!(
            "the length {len} runs past the end of the header ({} bytes left)",
            data.len()
        ));
    }
    let body = &data[space + 1..len];
    let Some((&b'\n', body)) = body.split_last() else {
        return Err(format!(
            "the record of length {len} does not end with a newline"
        ));
    };
    let eq = body
        .iter()
        .position(|b| *b == b'=')
        .ok_or("no \"=\" between key and value")?;
    if eq == 0 {
        return Err("the key is empty".into());
    }
    Ok((&body[..eq], &body[eq + 1..], len))
}

/// Digits only, no sign, no spaces, no overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as a correct writer makes it.
    fn rec(key: &str, value: &[u8]) -> Vec<u8> {
        let body = key.len() + value.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        let mut out = format!("{len} {key}=").into_bytes();
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    #[test]
    fn values_of_every_byte_round_trip() {
        let mut data = Vec::new();
        let mut expected = Vec::new();
        for b in 0..=255u8 {
            let value = vec![b, b'\n', b, 0, b'=', b' '];
            let key = format!("SCHILY.xattr.user.b{b}");
            data.extend(rec(&key, &value));
            expected.push((key.into_bytes(), value));
        }
        let every: Vec<u8> = (0..=255).collect();
        data.extend(rec("SCHILY.xattr.user.all", &every));
        expected.push((b"SCHILY.xattr.user.all".to_vec(), every.clone()));
        data.extend(rec("path", b"a\n9 path=b\n"));
        expected.push((b"path".to_vec(), b"a\n9 path=b\n".to_vec()));
        let parsed = PaxRecords::parse(&data).unwrap();
        assert_eq!(parsed.0, expected);
        assert_eq!(parsed.get("SCHILY.xattr.user.all"), Some(&every[..]));
        assert_eq!(parsed.get("path"), Some(&b"a\n9 path=b\n"[..]));
    }

    #[test]
    fn lengths_count_their_own_digits() {
        // 9 + 1 digit = 10 but 98 + 2 digits = 100: the boundaries.
        for n in [0, 1, 80, 85, 86, 87, 88, 89, 90, 980, 990, 9990] {
            let value = vec![b'v'; n];
            let r = rec("k", &value);
            assert_eq!(
                PaxRecords::parse(&r).unwrap().get("k"),
                Some(&value[..]),
                "{n}"
            );
        }
    }

    #[test]
    fn later_records_override_and_empty_values_mean_none() {
        let mut data = rec("size", b"10");
        data.extend(rec("size", b"20"));
        data.extend(rec("uid", b""));
        data.extend(rec("gid", b"-1"));
        let p = PaxRecords::parse(&data).unwrap();
        assert_eq!(p.number("size"), Ok(Some(20)));
        assert_eq!(p.number("uid"), Ok(None));
        assert!(p.number("gid").is_err());
        assert_eq!(p.number("mtime"), Ok(None));
        assert_eq!(p.bytes("uid"), None);
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [
            &b"99 path=a\n"[..],
            b"5 path=a\n",
            b"x1 path=a\n",
            b"11 patha12\n",
            b"10 path=ab",
            b"10 path=a\0",
            b"0 \n",
            b"3 \n",
            b"4 =\n\n",
            b" 9 path=\n",
            b"+9 path=\n",
            b"18446744073709551617 a=b\n",
            b"99999999999999999999999 a=b\n",
            b"123456789012345678901234567890",
            b"9 path=\n\0",
            b"\n",
            b"\0",
            b"1",
        ] {
            assert!(PaxRecords::parse(bad).is_err(), "{:?}", show(bad));
        }
        assert_eq!(PaxRecords::parse(b"").unwrap(), PaxRecords::default());
        assert_eq!(
            PaxRecords::parse(b"6 k=\n\n").unwrap().get("k"),
            Some(&b"\n"[..])
        );
    }
}
