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

/// What an I/O error says of the path it concerns, in words rather than the C library's
/// text and number ("does not exist", not "No such file or directory (os error 2)"). An
/// error with words of its own (a wrapped cause) keeps them.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as Kind;
    if e.get_ref().is_some() {
        return e.to_string();
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
        _ => return e.to_string(),
    }
    .to_owned()
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
        // Words of its own are kept.
        let own = Error::new(ErrorKind::NotFound, "no such tag");
        assert_eq!(super::io_reason(&own), "no such tag");
    }
}
