//! Timestamps for `created` fields: RFC 3339 in UTC, from the clock or `SOURCE_DATE_EPOCH`.
//!
//! Every date strata writes or accepts must be one the peers can read back: Go's `time`
//! package (skopeo, umoci) parses only four-digit years and refuses to re-serialise an
//! instant outside 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z, and a tar header cannot
//! hold an mtime before 1970.

use crate::error::{Error, Result};

/// 0000-01-01T00:00:00Z, the first instant with a four-digit year.
pub const MIN_TIME: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z, the last instant with a four-digit year.
pub const MAX_TIME: i64 = 253_402_300_799;

/// The source date epoch the caller fixed, as text: checked where a time is needed, so a
/// bad value fails only the commands that record times. The library never reads the
/// environment; the CLI passes `SOURCE_DATE_EPOCH` here.
static SOURCE_DATE_EPOCH: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Fixes the time strata records in `created` fields and clamps layer mtimes to (seconds
/// since 1970, from 0 to [`MAX_TIME`]), for reproducible builds; `None` for the clock.
pub fn set_source_date_epoch(epoch: Option<String>) {
    *SOURCE_DATE_EPOCH.write().unwrap_or_else(|e| e.into_inner()) = epoch;
}

fn fixed_epoch() -> Option<String> {
    SOURCE_DATE_EPOCH
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The fixed source date epoch when set (reproducible builds), else now; seconds since the
/// epoch. An epoch that is not a whole number from 0 to [`MAX_TIME`] is refused: it also
/// clamps layer mtimes, which a tar header cannot store below 0.
pub fn build_time() -> Result<i64> {
    match fixed_epoch() {
        Some(v) => parse_epoch(&v),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)),
    }
}

fn parse_epoch(v: &str) -> Result<i64> {
    let invalid = |reason: String| Error::BadSetting {
        name: "SOURCE_DATE_EPOCH".into(),
        reason,
    };
    let secs: i64 = v
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{v:?} is not a whole number of seconds")))?;
    if !(0..=MAX_TIME).contains(&secs) {
        return Err(invalid(format!(
            "{v:?} is out of range: from 0 (1970-01-01T00:00:00Z, layer mtimes cannot go \
             lower) to {MAX_TIME} ({})",
            rfc3339(MAX_TIME)
        )));
    }
    Ok(secs)
}

/// The fixed source date epoch, if set, for clamping mtimes.
pub fn source_date_epoch() -> Result<Option<i64>> {
    fixed_epoch().map(|v| parse_epoch(&v)).transpose()
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The instant (whole seconds since the epoch, in UTC) of an RFC 3339 timestamp as Go's
/// `time.RFC3339` reads it: `YYYY-MM-DDTHH:MM:SS`, an optional `.` and digits, then `Z` or
/// `±HH:MM`, every field in range (no leap second), `T` and `Z` upper case. `None` for
/// anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize, min: i64, max: i64| -> Option<i64> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        (min..=max).contains(&n).then_some(n)
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let year = num(0, 4, 0, 9999)?;
    let month = num(5, 7, 1, 12)?;
    let day = num(8, 10, 1, days_in_month(year, month))?;
    let hour = num(11, 13, 0, 23)?;
    let minute = num(14, 16, 0, 59)?;
    let second = num(17, 19, 0, 59)?;
    let mut rest = 19;
    if at(rest, b'.') {
        let digits = b[rest + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        rest += 1 + digits;
    }
    let offset = match &b[rest..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num(rest + 1, rest + 3, 0, 23)? * 60 + num(rest + 4, rest + 6, 0, 59)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Checks that a user-given timestamp is RFC 3339 as the image-spec requires of `created`
/// and as the peers read it (see [`parse_rfc3339`]), with its instant in UTC between
/// [`MIN_TIME`] and [`MAX_TIME`] (four-digit years).
pub fn validate_rfc3339(s: &str) -> Result<()> {
    match parse_rfc3339(s) {
        Some(t) if (MIN_TIME..=MAX_TIME).contains(&t) => Ok(()),
        Some(_) => Err(Error::Invalid {
            what: format!("timestamp {s:?}"),
            reason: format!(
                "in UTC it falls outside {} ..= {} (four-digit years)",
                rfc3339(MIN_TIME),
                rfc3339(MAX_TIME)
            ),
        }),
        None => Err(Error::Invalid {
            what: format!("timestamp {s:?}"),
            reason: "expected RFC 3339 with a four-digit year and fields in range, \
                     e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00.5+02:00"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(MIN_TIME), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_TIME), "9999-12-31T23:59:59Z");
        assert!(validate_rfc3339("2023-11-14T22:13:20.5+01:00").is_ok());
        assert!(validate_rfc3339("yesterday").is_err());
    }

    #[test]
    fn parses_what_it_formats() {
        for t in [MIN_TIME, -1, 0, 951_782_400, 1_700_000_000, MAX_TIME] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{t}");
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.999+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:01"), Some(60));
    }

    #[test]
    fn refuses_what_go_cannot_read_back() {
        for bad in [
            "10000-01-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00+01:60",
            "2024-01-01T00:00:00+1:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Zé",
            "2024-01-01t00:00:00Z",
            "9999-12-31T23:59:59-00:01",
            "0000-01-01T00:00:00+00:01",
            "",
        ] {
            assert!(validate_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_date_epoch_must_be_in_range() {
        assert_eq!(parse_epoch("0").unwrap(), 0);
        assert_eq!(parse_epoch(" 1700000000\n").unwrap(), 1_700_000_000);
        assert_eq!(parse_epoch("253402300799").unwrap(), MAX_TIME);
        for bad in ["253402300800", "-1", "99999999999999999999", "1.5", "soon"] {
            let err = parse_epoch(bad).unwrap_err().to_string();
            assert!(
                err.contains("SOURCE_DATE_EPOCH") && err.contains(bad),
                "{err}"
            );
        }
    }
}
