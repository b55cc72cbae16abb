//! The grammar of the config values `strata config` sets: exposed ports, stop signals, the
//! user and the paths of volumes and the working directory. A value a runtime would reject is
//! refused when it is set, not when a container starts.

use crate::error::{Error, Result};

fn invalid(what: &str, value: &str, reason: &str) -> Error {
    Error::Invalid {
        what: format!("{what} {value:?}"),
        reason: reason.to_owned(),
    }
}

/// `PORT[/PROTO]` as the config stores it: `PORT/PROTO`, tcp when none is given. The
/// image-spec's `ExposedPorts` keys are `port/tcp`, `port/udp` or a bare port.
pub fn exposed_port(value: &str) -> Result<String> {
    let (port, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let number_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    if !number_ok {
        return Err(invalid(
            "the exposed port",
            value,
            "the port must be a number from 1 to 65535",
        ));
    }
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(invalid(
            "the exposed port",
            value,
            "the protocol must be tcp, udp or sctp",
        ));
    }
    Ok(format!("{}/{proto}", port.trim_start_matches('0')))
}

/// Signal names Linux has, without their `SIG` prefix.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS", "RTMIN", "RTMAX",
];

/// A stop signal: a name (`SIGTERM` or `TERM`, any case, `RTMIN+N`/`RTMAX-N`) or a number
/// from 1 to 64, as runtimes parse it.
pub fn stop_signal(value: &str) -> Result<()> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = if number(name) {
        name.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n))
    } else if let Some(offset) = name
        .strip_prefix("RTMIN+")
        .or_else(|| name.strip_prefix("RTMAX-"))
    {
        number(offset) && offset.parse::<u32>().is_ok_and(|n| n <= 30)
    } else {
        SIGNALS.contains(&name)
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "the stop signal",
            value,
            "not a signal (a name such as SIGTERM, or a number from 1 to 64)",
        ))
    }
}

/// What [`absolute_path`] calls a volume.
pub const VOLUME: &str = "the volume";
/// What [`absolute_path`] calls the working directory.
pub const WORKDIR: &str = "the working directory";

/// An absolute path inside the container (volumes, the working directory).
pub fn absolute_path(what: &str, value: &str) -> Result<()> {
    if !value.starts_with('/') {
        return Err(invalid(what, value, "must be an absolute path"));
    }
    if value.contains('\0') {
        return Err(invalid(what, value, "must not hold a NUL byte"));
    }
    Ok(())
}

/// The largest uid or gid a user may name (ids are signed 32-bit in the kernel ABI; -1 is
/// "none").
pub(crate) const MAX_ID: u32 = i32::MAX as u32;

/// The grammar's refusal of a user with more than one `:`.
const USER_FORMS: &str = "expected USER, UID, USER:GROUP or UID:GID";

/// A user or group part that is all digits: `Some(Ok(id))`, or `Some(Err)` when out of
/// range; `None` for a name (or nothing).
pub(crate) fn numeric_id(part: &str) -> Option<std::result::Result<u32, String>> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        part.parse::<u32>()
            .ok()
            .filter(|&id| id <= MAX_ID)
            .ok_or_else(|| format!("id {part} is out of range (0 to {MAX_ID})")),
    )
}

/// A config `User` split into its user and group parts (empty when not given), each numeric
/// one checked for range: the grammar unpack resolves, whatever the image's `/etc/passwd`
/// holds. The error is the reason.
pub(crate) fn user_parts(value: &str) -> std::result::Result<(&str, &str), String> {
    let (user, group) = match value.split_once(':') {
        Some((_, g)) if g.contains(':') => return Err(USER_FORMS.into()),
        Some(parts) => parts,
        None => (value, ""),
    };
    for part in [user, group] {
        numeric_id(part).transpose()?;
    }
    Ok((user, group))
}

/// A user as the image config stores it: `USER`, `UID`, `USER:GROUP` or `UID:GID` (empty
/// parts allowed, as runtimes read them: an empty user is root).
pub fn user(value: &str) -> Result<()> {
    // No /etc/passwd line can name such a user (useradd refuses them; a newline would end
    // the line): written into a config, it could only fail at run time.
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "the user",
            value,
            "a user or group name has no spaces or control characters",
        ));
    }
    user_parts(value)
        .map(|_| ())
        .map_err(|reason| invalid("the user", value, &reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(exposed_port("80").unwrap(), "80/tcp");
        assert_eq!(exposed_port("53/udp").unwrap(), "53/udp");
        assert_eq!(exposed_port("0080/sctp").unwrap(), "80/sctp");
        for bad in ["", "0", "65536", "http", "80/tcp6", "80/", "-1", "80/TCP"] {
            assert!(exposed_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        for good in [
            "SIGTERM",
            "term",
            "KILL",
            "9",
            "64",
            "SIGRTMIN+3",
            "RTMAX-2",
        ] {
            assert!(stop_signal(good).is_ok(), "{good}");
        }
        for bad in [
            "", "SIG", "0", "65", "SIGFOO", "RTMIN+", "RTMIN+31", "TERM ",
        ] {
            assert!(stop_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users() {
        for good in [
            "",
            "alice",
            "1000",
            "alice:staff",
            "1000:1000",
            ":50",
            "alice:",
            "2147483647",
        ] {
            assert!(user(good).is_ok(), "{good}");
        }
        for bad in [
            "bad user",
            "a\u{1b}[31m",
            "alice:st aff",
            "a\nb",
            "a:b:c",
            "::",
            "1:2:",
            "2147483648",
            "0:99999999999",
            "alice:4294967295",
        ] {
            assert!(user(bad).is_err(), "{bad}");
        }
        assert_eq!(user_parts("alice").unwrap(), ("alice", ""));
    }

    #[test]
    fn paths() {
        assert!(absolute_path(VOLUME, "/data").is_ok());
        assert!(absolute_path(VOLUME, "data").is_err());
        assert!(absolute_path(WORKDIR, "").is_err());
    }
}
