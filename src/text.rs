//! Text from images, archives and registries, made fit to show on a terminal.

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
}
