//! Value parsers for flags whose values have a grammar: a bad value is an invocation error
//! (clap prints it with the usage and exits 2) found before anything is opened or written.

use strata::image::mutate::ClearField;

/// A tag (`org.opencontainers.image.ref.name` grammar).
pub fn tag(s: &str) -> Result<String, strata::Error> {
    strata::layout::reference::validate_tag(s).map(|()| s.to_owned())
}

/// `OS/ARCH[/VARIANT]`, kept as text: the commands parse it again where they use it.
pub fn platform(s: &str) -> Result<String, strata::Error> {
    s.parse::<strata::image::PlatformSpec>()
        .map(|_| s.to_owned())
}

/// A field `--clear` empties.
pub fn clear_field(s: &str) -> Result<ClearField, strata::Error> {
    s.parse()
}

/// An RFC 3339 time as Go reads it.
pub fn time(s: &str) -> Result<String, strata::Error> {
    strata::image::time::validate_rfc3339(s).map(|()| s.to_owned())
}

/// `PORT[/PROTO]`.
pub fn port(s: &str) -> Result<String, strata::Error> {
    strata::image::config_values::exposed_port(s).map(|_| s.to_owned())
}

/// A user: `USER`, `UID`, `USER:GROUP` or `UID:GID`, as unpack resolves it.
pub fn user(s: &str) -> Result<String, strata::Error> {
    strata::image::config_values::user(s).map(|()| s.to_owned())
}

/// A volume: an absolute path.
pub fn volume(s: &str) -> Result<String, strata::Error> {
    strata::image::config_values::absolute_path(strata::image::config_values::VOLUME, s)
        .map(|()| s.to_owned())
}

/// A working directory: an absolute path.
pub fn workdir(s: &str) -> Result<String, strata::Error> {
    strata::image::config_values::absolute_path(strata::image::config_values::WORKDIR, s)
        .map(|()| s.to_owned())
}

/// A signal name or number.
pub fn stop_signal(s: &str) -> Result<String, strata::Error> {
    strata::image::config_values::stop_signal(s).map(|()| s.to_owned())
}

/// A media type, `type/subtype` (RFC 6838), as artifact types are.
pub fn media_type(s: &str) -> Result<String, String> {
    if strata::spec::is_valid_media_type(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a media type (type/subtype, RFC 6838)"
        ))
    }
}

/// `UID:GID`, each a number below 4294967295 (which the kernel reads as "unchanged").
pub fn owner(s: &str) -> Result<(u32, u32), String> {
    let id = |part: &str| {
        part.parse::<u32>()
            .ok()
            .filter(|&n| n != u32::MAX)
            .ok_or_else(|| format!("{part:?} is not a uid or gid (a number below 4294967295)"))
    };
    let (uid, gid) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: give UID:GID"))?;
    Ok((id(uid)?, id(gid)?))
}

/// The ranges of a repeatable id-map flag as one map: ranges that overlap are a wrong value
/// too, found once all are parsed (clap sees one value at a time).
pub fn id_map(
    flag: &str,
    ranges: Vec<strata::bundle::idmap::IdMapping>,
) -> anyhow::Result<strata::bundle::idmap::IdMap> {
    strata::bundle::idmap::IdMap::new(ranges)
        .map_err(|e| anyhow::Error::new(super::output::Usage(format!("{flag}: {e}"))))
}

/// A LAYOUT argument of a command that may create it (a path, `:` included): refused when
/// it begins with a skopeo transport name (`oci:lay`), as a REF is, unless a directory of
/// that exact name exists.
pub fn new_layout(s: &str) -> Result<std::path::PathBuf, String> {
    match super::transport_prefix(s) {
        Some((prefix, rest)) if !std::path::Path::new(s).exists() => {
            if rest.starts_with("//") {
                return Err(format!(
                    "\"{prefix}:\" is a skopeo transport, not a layout: a registry is reached \
                     with strata pull and strata push"
                ));
            }
            let instead = if rest.is_empty() {
                "give the layout's directory".to_owned()
            } else {
                format!("give {rest}")
            };
            Err(format!(
                "\"{prefix}:\" is a skopeo transport, not part of a layout's path: {instead} \
                 (./{s} names a directory called so)"
            ))
        }
        _ => Ok(s.into()),
    }
}
