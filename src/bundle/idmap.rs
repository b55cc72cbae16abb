//! User and group id mappings (`C:H:N`), as user namespaces define them: container
//! ids `C..C+N` are host ids `H..H+N`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The id `chown(2)` reads as "no change" (`(uid_t)-1`): never a real owner, so it is
/// refused wherever an id comes from a layer or a mapping.
pub const UNCHANGED_ID: u32 = u32::MAX;

/// One contiguous range of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    /// First id inside the container.
    #[serde(rename = "containerID")]
    pub container_id: u32,
    /// First id on the host.
    #[serde(rename = "hostID")]
    pub host_id: u32,
    /// Number of ids.
    pub size: u32,
}

impl FromStr for IdMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<IdMapping, Error> {
        let bad = || Error::Invalid {
            what: format!("id mapping {s:?}"),
            reason: "expected CONTAINER:HOST:SIZE, three numbers with SIZE at least 1".into(),
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [c, h, n] = parts.as_slice() else {
            return Err(bad());
        };
        let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
        let m = IdMapping {
            container_id: num(c)?,
            host_id: num(h)?,
            size: num(n)?,
        };
        if m.size == 0 {
            return Err(bad());
        }
        if m.container_id.checked_add(m.size).is_none() || m.host_id.checked_add(m.size).is_none() {
            return Err(Error::Invalid {
                what: format!("id mapping {s:?}"),
                reason: format!(
                    "a range may not reach id {UNCHANGED_ID}: chown and the kernel read it as \
                     \"leave the owner unchanged\", so files would keep the unpacking user's \
                     ids (root's) instead of the ones asked for"
                ),
            });
        }
        Ok(m)
    }
}

impl fmt::Display for IdMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.container_id, self.host_id, self.size)
    }
}

/// A full mapping: several ranges. Empty means identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap(pub Vec<IdMapping>);

impl IdMap {
    /// A map of `ranges`, refused (see [`IdMap::check`]) when two of them overlap.
    pub fn new(ranges: Vec<IdMapping>) -> Result<IdMap, Error> {
        let map = IdMap(ranges);
        map.check()?;
        Ok(map)
    }

    /// Refuses ranges that overlap, inside the container or on the host: the kernel refuses
    /// such a map, and an id mapped twice has no single answer either way (repack maps host
    /// ids back).
    pub fn check(&self) -> Result<(), Error> {
        type Side = (&'static str, fn(&IdMapping) -> u32);
        let sides: [Side; 2] = [("container", |m| m.container_id), ("host", |m| m.host_id)];
        for (i, a) in self.0.iter().enumerate() {
            for b in &self.0[i + 1..] {
                for (side, start) in sides {
                    // u64: a range read from a bundle's metadata was not checked to end
                    // below u32::MAX.
                    let first = start(a).max(start(b)) as u64;
                    let end =
                        (start(a) as u64 + a.size as u64).min(start(b) as u64 + b.size as u64);
                    if first < end {
                        let ids = if end - first == 1 {
                            format!("{side} id {first}")
                        } else {
                            format!("{side} ids {first} to {}", end - 1)
                        };
                        return Err(Error::Invalid {
                            what: format!("id mappings {a} and {b}"),
                            reason: format!(
                                "they overlap: both map {ids} (the kernel refuses overlapping \
                                 ranges, and an id mapped twice has no single owner to map back)"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The host id for a container id; identity when the map is empty, `None` when the id
    /// is outside every range. [`UNCHANGED_ID`] is never an answer (a map read from a
    /// bundle's metadata was not checked by parsing).
    pub fn to_host(&self, id: u32) -> Option<u32> {
        if id == UNCHANGED_ID {
            return None;
        }
        if self.0.is_empty() {
            return Some(id);
        }
        // Checked: a map read from a bundle's strata.json was not validated as one the
        // caller gives is, and a range past u32::MAX must not wrap to root.
        self.0
            .iter()
            .find_map(|m| {
                let offset = id.checked_sub(m.container_id)?;
                (offset < m.size).then(|| m.host_id.checked_add(offset))?
            })
            .filter(|h| *h != UNCHANGED_ID)
    }

    /// The container id for a host id (the inverse of [`IdMap::to_host`]).
    pub fn to_container(&self, id: u32) -> Option<u32> {
        if id == UNCHANGED_ID {
            return None;
        }
        if self.0.is_empty() {
            return Some(id);
        }
        self.0
            .iter()
            .find_map(|m| {
                let offset = id.checked_sub(m.host_id)?;
                (offset < m.size).then(|| m.container_id.checked_add(offset))?
            })
            .filter(|c| *c != UNCHANGED_ID)
    }

    /// True when no mapping is set.
    pub fn is_identity(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps_both_ways() {
        let m: IdMapping = "0:100000:65536".parse().unwrap();
        let map = IdMap(vec![m, "70000:5000:10".parse().unwrap()]);
        assert_eq!(map.to_host(0), Some(100000));
        assert_eq!(map.to_host(65535), Some(165535));
        assert_eq!(map.to_host(65536), None);
        assert_eq!(map.to_host(70009), Some(5009));
        assert_eq!(map.to_container(100042), Some(42));
        assert_eq!(IdMap::default().to_host(7), Some(7));
        for bad in [
            "0:1",
            "a:1:1",
            "0:0:0",
            "1:2:3:4",
            "4294967295:0:2",
            "4294967295:0:1",
            "0:4294967295:1",
            "4294967200:0:96",
            "0:4294967200:96",
        ] {
            assert!(bad.parse::<IdMapping>().is_err(), "{bad}");
        }
        assert!("4294967200:0:95".parse::<IdMapping>().is_ok());
        assert_eq!(IdMap::default().to_host(UNCHANGED_ID), None);
        assert_eq!(IdMap::default().to_container(UNCHANGED_ID), None);
        // Unchecked ranges (as deserialised) still never produce it.
        let raw = IdMap(vec![IdMapping {
            container_id: 0,
            host_id: u32::MAX - 1,
            size: 5,
        }]);
        assert_eq!(raw.to_host(1), None);
        assert_eq!(raw.to_host(2), None);
        assert_eq!(raw.to_host(0), Some(u32::MAX - 1));
        assert_eq!(m.to_string(), "0:100000:65536");
    }

    #[test]
    fn overlaps_are_refused_on_either_side() {
        let map = |specs: &[&str]| IdMap::new(specs.iter().map(|s| s.parse().unwrap()).collect());
        assert!(map(&["0:1000:1", "1:2000:1"]).is_ok());
        assert!(map(&["0:1000:10", "10:1010:10"]).is_ok());
        assert!(map(&[]).is_ok());
        let e = map(&["0:1000:1", "0:2000:1"]).unwrap_err().to_string();
        assert!(
            e.contains("0:1000:1 and 0:2000:1") && e.contains("container id 0 "),
            "{e}"
        );
        let e = map(&["0:1000:10", "20:1000:10"]).unwrap_err().to_string();
        assert!(e.contains("host ids 1000 to 1009"), "{e}");
        let e = map(&["5:0:1", "0:100:10"]).unwrap_err().to_string();
        assert!(e.contains("container id 5 "), "{e}");
        // Unchecked ranges (as deserialised) reaching u32::MAX do not wrap.
        let raw = IdMap(vec![
            IdMapping {
                container_id: u32::MAX - 1,
                host_id: 0,
                size: 5,
            },
            IdMapping {
                container_id: 0,
                host_id: 10,
                size: 1,
            },
        ]);
        assert!(raw.check().is_ok());
    }
}
