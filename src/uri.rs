//! RFC 3986 URIs, for descriptors' `urls`: `scheme ":" hier-part ["?" query] ["#" fragment]`,
//! checked by the RFC's grammar (section 3 and appendix A), not by what a URL library would
//! repair. A relative reference is not a URI.

use std::net::Ipv6Addr;

/// True when `s` is a URI by RFC 3986's `URI` rule.
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    if !is_scheme(scheme) {
        return false;
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (hier, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let tail_ok = |part: Option<&str>| {
        part.is_none_or(|p| chars_ok(p, |b| is_pchar(b) || b == b'/' || b == b'?'))
    };
    if !tail_ok(query) || !tail_ok(fragment) {
        return false;
    }
    match hier.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            is_authority(authority) && is_path(path)
        }
        // path-absolute, path-rootless or path-empty: "//" was taken above.
        None => is_path(hier),
    }
}

fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@')
}

/// Every byte passes `allowed`, or is the `%` of a percent-encoding (`%` HEXDIG HEXDIG).
fn chars_ok(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_path(s: &str) -> bool {
    chars_ok(s, |b| is_pchar(b) || b == b'/')
}

/// `[ userinfo "@" ] host [ ":" port ]`.
fn is_authority(s: &str) -> bool {
    let (userinfo, hostport) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    if userinfo.is_some_and(|u| !chars_ok(u, |b| is_unreserved(b) || is_sub_delim(b) || b == b':'))
    {
        return false;
    }
    let (host, port) = if let Some(literal) = hostport.strip_prefix('[') {
        let Some((inside, after)) = literal.split_once(']') else {
            return false;
        };
        if !is_ip_literal(inside) {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", port),
                None => return false,
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (hostport, ""),
        }
    };
    // reg-name (which IPv4 addresses also fit) and a port of digits.
    chars_ok(host, |b| is_unreserved(b) || is_sub_delim(b))
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// `IPv6address / IPvFuture`, inside the brackets.
fn is_ip_literal(s: &str) -> bool {
    if let Some(future) = s.strip_prefix(['v', 'V']) {
        return match future.split_once('.') {
            Some((version, rest)) => {
                !version.is_empty()
                    && version.bytes().all(|b| b.is_ascii_hexdigit())
                    && !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':')
            }
            None => false,
        };
    }
    s.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_uri;

    #[test]
    fn uris_by_the_grammar() {
        for good in [
            "https://example.com/foo",
            "http://user:pw@example.com:8080/a/b?x=1&y=%20#frag",
            "http://[::1]:5000/v2/",
            "http://[v1.fe]/",
            "urn:isbn:0451450523",
            "mailto:someone@example.com",
            "file:///tmp/x",
            "s3:bucket/key",
            "http://example.com:/",
            "x:",
        ] {
            assert!(is_uri(good), "{good}");
        }
        for bad in [
            "value",
            "/relative/path",
            "//example.com/no-scheme",
            "1http://example.com",
            "http://exa mple.com/",
            "http://example.com/a b",
            "http://example.com/%zz",
            "http://example.com:80x/",
            "http://[::1/",
            "http://[notip]/",
            "https://example.com/<>",
            "",
            ":nothing",
        ] {
            assert!(!is_uri(bad), "{bad}");
        }
    }
}
