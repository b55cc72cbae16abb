//! The library speaks of choices, never of the CLI's flags: a message or option that names
//! `--tag` is wrong for any other front end, and goes stale when a flag is renamed. This
//! test reads the library's source and fails on a string literal that names a flag,
//! outside test code.

use std::path::{Path, PathBuf};

/// The string literals of `source` outside `#[cfg(test)]` items and comments, each with
/// its line.
fn literals(source: &str) -> Vec<(usize, String)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Brace depth where a `#[cfg(test)]` item began, while inside one.
    let mut depth = 0usize;
    let mut test_item: Option<usize> = None;
    let mut test_pending = false;
    while i < bytes.len() {
        let rest = &source[i..];
        let c = bytes[i];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(bytes.len(), |n| i + n);
            i = end;
            continue;
        }
        if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(bytes.len(), |n| i + n + 2);
            line += source[i..end].matches('\n').count();
            i = end;
            continue;
        }
        if rest.starts_with("#[cfg(test)]") {
            test_pending = true;
            i += "#[cfg(test)]".len();
            continue;
        }
        let raw = rest.starts_with("r\"") || rest.starts_with("r#");
        if c == b'"' || (raw && (i == 0 || !is_ident(bytes[i - 1]))) {
            let (text, end) = if c == b'"' {
                quoted(source, i)
            } else {
                raw_quoted(source, i)
            };
            if test_item.is_none() && !test_pending {
                found.push((line, text));
            }
            line += source[i..end].matches('\n').count();
            i = end;
            continue;
        }
        if c == b'\'' {
            // A char literal ('"', '\'', 'x'); a lifetime has no closing quote.
            if let Some(len) = char_literal_len(rest) {
                i += len;
                continue;
            }
        }
        match c {
            b'\n' => line += 1,
            b'{' => {
                if test_pending {
                    test_pending = false;
                    test_item.get_or_insert(depth);
                }
                depth += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                if test_item == Some(depth) {
                    test_item = None;
                }
            }
            // An item without a body (`#[cfg(test)] use ...;`) ends at its semicolon.
            b';' if test_pending => test_pending = false,
            _ => {}
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A `"..."` literal starting at `start`: its content and the index past it.
fn quoted(source: &str, start: usize) -> (String, usize) {
    let bytes = source.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    let end = (i + 1).min(bytes.len());
    (source[start + 1..i.min(bytes.len())].to_owned(), end)
}

/// A `r#"..."#` literal starting at `start`.
fn raw_quoted(source: &str, start: usize) -> (String, usize) {
    let rest = &source[start + 1..];
    let hashes = rest.bytes().take_while(|&b| b == b'#').count();
    let open = start + 1 + hashes + 1;
    let close = format!("\"{}", "#".repeat(hashes));
    match source[open..].find(&close) {
        Some(n) => (source[open..open + n].to_owned(), open + n + close.len()),
        None => (source[open..].to_owned(), source.len()),
    }
}

fn char_literal_len(rest: &str) -> Option<usize> {
    let mut chars = rest.char_indices().skip(1);
    let (_, first) = chars.next()?;
    if first == '\\' {
        let close = rest[2..].find('\'')?;
        return Some(2 + close + 1);
    }
    match chars.next() {
        Some((n, '\'')) => Some(n + 1),
        _ => None,
    }
}

/// `--` then a letter: a long flag's spelling.
fn names_a_flag(text: &str) -> bool {
    text.match_indices("--").any(|(n, _)| {
        text[n + 2..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
    })
}

fn library_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "cli") {
                library_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            // main.rs is the CLI's; this file is test code (and quotes flags to test itself).
            && path
                .file_name()
                .is_some_and(|n| n != "main.rs" && n != "flag_free.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn no_library_string_names_a_cli_flag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    library_sources(&src, &mut files);
    assert!(files.len() > 20, "the library's sources were not found");
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, literal) in literals(&text) {
            if names_a_flag(&literal) {
                offenders.push(format!("{}:{line}: {literal:?}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "library strings name CLI flags (say it in the library's terms; the CLI adds the \
         flag):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scan_sees_literals_and_skips_tests_and_comments() {
    let source = r##"
        // "--in-a-comment"
        /* "--in-a-block" */
        fn f<'a>(x: &'a str) -> char { let _ = "--real"; let _ = r#"--raw"#; '"' }
        const Q: char = '\'';
        fn g() { let _ = "after \" quote --late"; }
        #[cfg(test)]
        mod tests { fn t() { let _ = "--test-only"; } }
        #[cfg(test)]
        use x::y;
        fn h() { let _ = "--after-tests"; }
    "##;
    let flagged: Vec<String> = literals(source)
        .into_iter()
        .filter(|(_, t)| names_a_flag(t))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        flagged,
        [
            "--real",
            "--raw",
            "after \\\" quote --late",
            "--after-tests"
        ]
    );
    assert!(!names_a_flag("joined by -._:@+ or --, separated"));
}
