//! The words of messages: counted nouns ("1 layer", never "1 layers" or "1 blob(s)"), I/O
//! errors said in words, and text from images, archives and registries made fit to show on
//! a terminal.

/// `n` and the noun that agrees with it: `one` for 1, else `many`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A byte count in words: "1 byte", "2 bytes".
pub fn bytes(n: u64) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// What an I/O error says of the path it concerns, in words rather than the C library's
/// text and number ("does not exist", not "No such file or directory (os error 2)"). An
/// error with words of its own (a wrapped cause) keeps them.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as Kind;
    let wrapped = e.get_ref().map(|inner| inner.to_string());
    // tempfile's errors add " at path X" to the system's: the error's subject names the
    // file already, and a temp name is the tool's business; such a one is said as the
    // system error it wraps. Any other error with words of its own keeps them.
    if let Some(text) = &wrapped {
        if !text.contains(" at path ") {
            return e.to_string();
        }
    }
    // ErrorKind::FilesystemLoop is not stable: a symlink loop in an image's tree.
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return "too many levels of symbolic links".to_owned();
    }
    match e.kind() {
        Kind::NotFound => "does not exist",
        Kind::NotADirectory => "not a directory",
        Kind::IsADirectory => "is a directory",
        Kind::AlreadyExists => "exists already",
        Kind::PermissionDenied => "permission denied",
        Kind::ReadOnlyFilesystem => "read-only file system",
        Kind::StorageFull => "no space left on the device",
        Kind::InvalidFilename => "the name or path is too long for the file system",
        _ => {
            return match wrapped {
                Some(text) => text
                    .split(" at path ")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                None => e.to_string(),
            }
        }
    }
    .to_owned()
}

/// How a count of temp files and staging directories is said: "1 temp file and 2 staging
/// directories", either part left out when there are none of it.
pub fn temp_entries(files: usize, dirs: usize) -> String {
    let files_said = plural(files, "temp file", "temp files");
    let dirs_said = plural(dirs, "staging directory", "staging directories");
    match (files, dirs) {
        (_, 0) => files_said,
        (0, _) => dirs_said,
        _ => format!("{files_said} and {dirs_said}"),
    }
}

/// What a JSON document that did not decode gets wrong, in words: serde's own messages name
/// the Rust types it was decoded into ("expected struct Versioned", "expected u64"), which
/// mean nothing to whoever wrote the document.
pub fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.classify() != serde_json::error::Category::Data {
        return format!("malformed JSON: {text}");
    }
    let mut out: Vec<&str> = Vec::new();
    let mut words = text.split(' ').peekable();
    while let Some(word) = words.next() {
        let (bare, comma) = match word.strip_suffix(',') {
            Some(bare) => (bare, ","),
            None => (word, ""),
        };
        let said = match bare {
            // "struct NAME", "tuple struct NAME", "enum NAME": the name is Rust's own.
            "struct" | "enum" if words.peek().is_some() => {
                words.next();
                if bare == "struct" {
                    "a JSON object"
                } else {
                    "a known value"
                }
            }
            "tuple" | "unit" | "newtype" if words.peek() == Some(&"struct") => {
                words.next();
                words.next();
                "a JSON value of another shape"
            }
            "sequence" => "JSON array",
            "map" => "JSON object",
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of 0 or more",
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
            "f32" | "f64" => "a number",
            "option" => "a value or null",
            other => other,
        };
        out.push(said);
        out.push(comma);
        out.push(" ");
    }
    out.pop();
    out.concat()
}

/// What kind of JSON value `value` is, as a message says it.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value as V;
    match value {
        V::Null => "null",
        V::Bool(_) => "true or false",
        V::Number(_) => "a number",
        V::String(_) => "a string",
        V::Array(_) => "an array",
        V::Object(_) => "an object",
    }
}

/// When `raw` is well-formed JSON of another kind than a JSON `want` ("object", "array"),
/// says so ("is not a JSON object (it is null)"): said better than by the error of
/// decoding it into a type. Meant for a document that already failed to decode.
pub(crate) fn other_json_kind(raw: &[u8], want: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let is = json_kind(&value);
    let wanted = matches!((want, &value), ("object", serde_json::Value::Object(_)))
        || matches!((want, &value), ("array", serde_json::Value::Array(_)));
    (!wanted).then(|| format!("is not a JSON {want} (it is {is})"))
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`: they could forge output
/// lines or drive the terminal), at most `max` characters of it.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn json_errors_name_no_rust_type() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Versioned {
            n: u64,
            list: Vec<String>,
        }
        let said =
            |raw: &str| super::json_reason(&serde_json::from_str::<Versioned>(raw).unwrap_err());
        assert_eq!(
            said("null"),
            "invalid type: null, expected a JSON object at line 1 column 4"
        );
        assert!(said(r#"{"n": -1}"#).contains("expected a whole number of 0 or more"));
        assert!(said(r#"{"n": 1, "list": {}}"#)
            .starts_with("invalid type: JSON object, expected a JSON array"));
        assert!(said(r#"{"n": 1"#).starts_with("malformed JSON: "));
        assert_eq!(
            super::other_json_kind(b"null", "object").as_deref(),
            Some("is not a JSON object (it is null)")
        );
        assert_eq!(super::other_json_kind(b"[]", "array"), None);
        assert_eq!(super::other_json_kind(b"[", "array"), None);
    }

    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert_eq!(printable("a\u{1b}[2J\nb", 100), "a\\u{1b}[2J\\nb");
        assert_eq!(printable("abc", 2), "ab");
        assert_eq!(printable("tab\there é", 100), "tab\\there é");
    }

    #[test]
    fn the_noun_agrees_with_the_count() {
        assert_eq!(super::plural(0, "layer", "layers"), "0 layers");
        assert_eq!(super::plural(1, "layer", "layers"), "1 layer");
        assert_eq!(super::plural(2, "entry", "entries"), "2 entries");
    }

    #[test]
    fn io_errors_are_said_in_words() {
        use std::io::{Error, ErrorKind};
        let os = |n| super::io_reason(&Error::from_raw_os_error(n));
        assert_eq!(os(2), "does not exist");
        assert_eq!(os(20), "not a directory");
        assert_eq!(os(21), "is a directory");
        assert_eq!(os(17), "exists already");
        assert_eq!(os(36), "the name or path is too long for the file system");
        assert_eq!(os(28), "no space left on the device");
        // tempfile's "at path" wrapper is said as the system error it wraps.
        let wrapped = Error::new(
            ErrorKind::StorageFull,
            "No space left on device (os error 28) at path \"/x/.tmp\"",
        );
        assert_eq!(super::io_reason(&wrapped), "no space left on the device");
        // Words of its own are kept.
        let own = Error::new(ErrorKind::NotFound, "no such tag");
        assert_eq!(super::io_reason(&own), "no such tag");
    }
}
