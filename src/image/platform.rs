//! Platforms as users write them (`os/arch[/variant]`) and matching them against index
//! entries, as containerd and the image-spec do: the first match wins.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::spec::Platform;

/// A platform to select, e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// Operating system.
    pub os: String,
    /// CPU architecture, in GOARCH spelling.
    pub architecture: String,
    /// CPU variant; `None` matches any.
    pub variant: Option<String>,
}

impl FromStr for PlatformSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<PlatformSpec, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(Error::InvalidPlatform(s.to_owned())),
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformSpec {
    /// True when an index entry's platform is this one.
    pub fn matches(&self, p: &Platform) -> bool {
        if p.os != self.os || p.architecture != self.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                normalise_variant(&self.architecture, Some(want))
                    == normalise_variant(&p.architecture, p.variant.as_deref())
            }
        }
    }
}

/// Whether two index entries' platforms are one to a consumer picking by platform: the
/// same OS, architecture, OS version and features, and variant once implied ones are
/// spelled (`linux/arm64` is `linux/arm64/v8`).
pub(crate) fn same_platform(a: &Platform, b: &Platform) -> bool {
    a.os == b.os
        && a.architecture == b.architecture
        && a.os_version == b.os_version
        && a.os_features == b.os_features
        && normalise_variant(&a.architecture, a.variant.as_deref())
            == normalise_variant(&b.architecture, b.variant.as_deref())
}

/// Variants that are implied when absent, as containerd's platform matcher treats them.
fn normalise_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    match (arch, variant) {
        ("arm64", None) | ("arm64", Some("8")) => Some("v8".into()),
        ("arm", None) | ("arm", Some("7")) => Some("v7".into()),
        (_, v) => v.map(str::to_owned),
    }
}

/// The platform strata runs on, in OCI spelling; the variant is left open.
pub fn host_platform() -> PlatformSpec {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    PlatformSpec {
        os: std::env::consts::OS.to_owned(),
        architecture: architecture.to_owned(),
        variant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            ..Platform::default()
        }
    }

    #[test]
    fn parses_and_matches() {
        let spec: PlatformSpec = "linux/arm64/v8".parse().unwrap();
        assert!(spec.matches(&platform("linux", "arm64", None)));
        assert!(spec.matches(&platform("linux", "arm64", Some("v8"))));
        assert!(!spec.matches(&platform("linux", "arm64", Some("v9"))));
        let any: PlatformSpec = "linux/arm".parse().unwrap();
        assert!(any.matches(&platform("linux", "arm", Some("v6"))));
        assert!(!any.matches(&platform("windows", "arm", None)));
        assert!("linux".parse::<PlatformSpec>().is_err());
        assert!("linux/amd64/v2/x".parse::<PlatformSpec>().is_err());
        assert_eq!(host_platform().os, "linux");
    }
}
