//! `WWW-Authenticate` challenges (RFC 7235): the scheme a registry asks for and its
//! parameters (`realm`, `service`, `scope` for the Bearer token flow).

use std::collections::BTreeMap;

/// One challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased (`bearer`, `basic`).
    pub scheme: String,
    /// Its parameters, names lowercased.
    pub params: BTreeMap<String, String>,
}

/// Every challenge in a header value. Parameters are `name=token` or `name="quoted"`;
/// a comma separates parameters and also challenges (a new challenge starts where a token
/// is followed by a space instead of `=`). What cannot be read is skipped.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = header.as_bytes();
    let mut i = 0;
    let token_end = |mut j: usize| {
        while j < b.len() && !b" \t,=\"".contains(&b[j]) {
            j += 1;
        }
        j
    };
    let skip_ws = |mut j: usize| {
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t' || b[j] == b',') {
            j += 1;
        }
        j
    };
    while i < b.len() {
        i = skip_ws(i);
        let start = i;
        i = token_end(i);
        if i == start {
            // A stray quote or '=': skip one byte.
            i += 1;
            continue;
        }
        let word = &header[start..i];
        if i < b.len() && b[i] == b'=' {
            // A parameter of the current challenge.
            i += 1;
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                let s = i;
                i = token_end(i);
                header[s..i].to_owned()
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_params() {
        let c = parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example/token");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn several_challenges_and_tokens() {
        let c =
            parse(r#"Basic realm="Registry Realm", Bearer realm=x, error="insufficient_scope""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].params["realm"], "x");
        assert_eq!(c[1].params["error"], "insufficient_scope");
        assert!(parse("").is_empty());
        assert_eq!(parse("\"=,").len(), 0);
    }
}
