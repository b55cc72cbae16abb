//! Conversions between strata's spec types and the `oci-spec` crate's (feature `oci-spec`):
//! [`Descriptor`] ⇄ `oci_spec::image::Descriptor`, [`Manifest`] ⇄ `ImageManifest`, [`Index`]
//! ⇄ `ImageIndex`, [`ImageConfig`] ⇄ `ImageConfiguration`, each a `TryFrom` both ways (by
//! reference and by value).
//!
//! Both sides are models of the same JSON, so each conversion goes through that JSON
//! (`serde_json::Value`): one type's serialisation read by the other's deserialiser, with
//! no field mapped by hand to drift out of date.
//!
//! What is lost going to oci-spec: oci-spec keeps no field it does not model, so strata's
//! `extra` (unknown fields on a descriptor, manifest, index or config, and Docker's config
//! fields such as `container_config` or `docker_version`) is dropped; what oci-spec models
//! is kept. oci-spec is also stricter: a digest it cannot parse, a negative size or a
//! schemaVersion other than a small unsigned number is refused ([`Error::BadJson`]) where
//! strata reads it in order to report it. Coming back from oci-spec nothing is lost.
//!
//! Serialising a converted value does not give the bytes it came from (fields dropped,
//! order and whitespace changed): a digest covers bytes, so never store it in place of the
//! blob it came from. To hand a stored blob to oci-spec, parse its exact bytes with
//! oci-spec's own reader instead (`ImageManifest::from_reader` on the blob's bytes).

use ::oci_spec::image as oci;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::spec::{Descriptor, ImageConfig, Index, Manifest};

/// One model's JSON read by the other; `what` names the conversion in errors.
fn convert<A: Serialize, B: DeserializeOwned>(from: &A, what: &str) -> Result<B> {
    serde_json::to_value(from)
        .and_then(serde_json::from_value)
        .map_err(Error::bad_json(what))
}

/// `TryFrom` both ways, by reference and by value, between a strata and an oci-spec type.
macro_rules! conversions {
    ($($strata:ty, $oci:ty, $name:literal;)*) => {$(
        impl TryFrom<&$strata> for $oci {
            type Error = Error;
            fn try_from(from: &$strata) -> Result<Self> {
                convert(from, concat!("a ", $name, " converted to oci-spec"))
            }
        }

        impl TryFrom<$strata> for $oci {
            type Error = Error;
            fn try_from(from: $strata) -> Result<Self> {
                Self::try_from(&from)
            }
        }

        impl TryFrom<&$oci> for $strata {
            type Error = Error;
            fn try_from(from: &$oci) -> Result<Self> {
                convert(from, concat!("an oci-spec ", $name, " converted to strata's"))
            }
        }

        impl TryFrom<$oci> for $strata {
            type Error = Error;
            fn try_from(from: $oci) -> Result<Self> {
                Self::try_from(&from)
            }
        }
    )*};
}

conversions! {
    Descriptor, oci::Descriptor, "descriptor";
    Manifest, oci::ImageManifest, "manifest";
    Index, oci::ImageIndex, "index";
    ImageConfig, oci::ImageConfiguration, "image config";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const LAYER: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    const CONFIG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn manifest_json() -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": CONFIG,
                "size": 7,
                "x-config-descriptor-extra": [1, 2]
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": LAYER,
                "size": 32,
                "annotations": {"org.example.b": "2", "org.example.a": "1"},
                "urls": ["https://example.com/layer"],
                "x-layer-extra": {"kept": "by strata"}
            }],
            "annotations": {"org.opencontainers.image.title": "t"},
            "x-manifest-extra": "unknown to both models"
        })
    }

    /// strata's JSON of `value` with every unknown field taken out, as oci-spec keeps it.
    fn without_unknowns(mut value: Value) -> Value {
        fn strip(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.retain(|k, _| !k.starts_with("x-"));
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut value);
        value
    }

    #[test]
    fn a_manifest_round_trips_losing_only_its_unknown_fields() {
        let ours: Manifest = serde_json::from_value(manifest_json()).unwrap();
        assert_eq!(ours.extra.len(), 1, "strata keeps the unknown field");
        let theirs = oci::ImageManifest::try_from(&ours).unwrap();
        assert_eq!(theirs.layers().len(), 1);
        assert_eq!(theirs.layers()[0].size(), 32);
        assert_eq!(theirs.config().digest().to_string(), CONFIG);
        let back = Manifest::try_from(theirs.clone()).unwrap();
        assert!(back.extra.is_empty());
        assert!(back.config.extra.is_empty() && back.layers[0].extra.is_empty());
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            without_unknowns(manifest_json())
        );
        // From oci-spec and back again: nothing lost.
        let again = oci::ImageManifest::try_from(back).unwrap();
        assert_eq!(again, theirs);
    }

    #[test]
    fn an_index_and_a_descriptor_round_trip() {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": LAYER,
                "size": 500,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                "annotations": {"org.opencontainers.image.ref.name": "app"}
            }],
            "x-index-extra": true
        });
        let ours: Index = serde_json::from_value(index.clone()).unwrap();
        let theirs = oci::ImageIndex::try_from(&ours).unwrap();
        let platform = theirs.manifests()[0].platform().as_ref().unwrap();
        assert_eq!(platform.variant().as_deref(), Some("v8"));
        let back = Index::try_from(&theirs).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            without_unknowns(index)
        );
        assert_eq!(back.manifests[0].ref_name(), Some("app"));

        let desc = ours.manifests[0].clone();
        let theirs = oci::Descriptor::try_from(&desc).unwrap();
        assert_eq!(Descriptor::try_from(theirs).unwrap(), desc);
    }

    #[test]
    fn a_docker_config_keeps_what_oci_spec_models() {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"], "User": "1:1"},
            "rootfs": {"type": "layers", "diff_ids": [LAYER]},
            "history": [{"created_by": "strata build", "empty_layer": false}],
            "container_config": {"Hostname": "docker's own"},
            "docker_version": "24.0.0"
        });
        let ours: ImageConfig = serde_json::from_value(config).unwrap();
        assert!(ours.extra.contains_key("docker_version"));
        let theirs = oci::ImageConfiguration::try_from(&ours).unwrap();
        assert_eq!(theirs.rootfs().diff_ids(), &[LAYER.to_owned()]);
        let back = ImageConfig::try_from(&theirs).unwrap();
        assert!(
            back.extra.is_empty(),
            "docker's fields are lost: {:?}",
            back.extra
        );
        assert_eq!(back.rootfs, ours.rootfs);
        assert_eq!(back.config, ours.config);
        assert_eq!(back.history, ours.history);
        assert_eq!(back.platform(), "linux/amd64");
    }

    #[test]
    fn what_oci_spec_refuses_is_an_error_naming_the_conversion() {
        let mut bad: Manifest = serde_json::from_value(manifest_json()).unwrap();
        bad.layers[0].digest = "sha256:not-hex".into();
        let e = oci::ImageManifest::try_from(&bad).unwrap_err();
        assert!(
            e.to_string().contains("manifest converted to oci-spec"),
            "{e}"
        );
        let mut negative: Descriptor = bad.config.clone();
        negative.size = -1;
        assert!(oci::Descriptor::try_from(negative).is_err());
    }
}
