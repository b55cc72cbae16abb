//! Image operations of issue 13: blobs in and out.

use crate::util::*;

#[test]
fn blob_writes_a_verified_blob_to_stdout() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["app"]);
    let lay = s(layout.root());
    let image = &images[0];
    let manifest_bytes =
        std::fs::read(layout.blob_path(&image.manifest.digest().unwrap())).unwrap();
    assert_eq!(
        ok_bytes(&["blob", &format!("{lay}@{}", image.manifest.digest)]),
        manifest_bytes
    );
    let config = json(&["inspect", &format!("{lay}:app"), "--raw", "manifest"]);
    let config_digest = config["config"]["digest"].as_str().unwrap().to_owned();
    let layer_digest = config["layers"][0]["digest"].as_str().unwrap().to_owned();
    let by_flag = ok_bytes(&["blob", &format!("{lay}:app"), "--config"]);
    assert_eq!(sha256(&by_flag).to_string(), config_digest);
    let layer = ok_bytes(&["blob", &format!("{lay}:app"), "--layer", "0"]);
    assert_eq!(sha256(&layer).to_string(), layer_digest);
    let err = fails(&["blob", &format!("{lay}:app"), "--layer", "9"], 1);
    assert!(err.contains("no layer 9"), "{err}");
    // A tag without --config/--layer names an image, not a blob.
    fails(&["blob", &format!("{lay}:app")], 2);
    // A damaged blob: the stream ends in an error naming it, exit 1.
    let path = layout
        .root()
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = fails(&["blob", &format!("{lay}@{layer_digest}")], 1);
    assert!(err.contains(&layer_digest), "{err}");
}

#[test]
fn blob_put_stores_a_file_and_prints_its_descriptor() {
    let dir = tempdir();
    let lay = dir.path().join("fresh");
    let file = dir.path().join("notes.txt");
    write(&file, b"notes\n");
    let desc = json(&[
        "blob",
        "put",
        s(&lay),
        s(&file),
        "--media-type",
        "text/plain",
        "--json",
    ]);
    let digest = sha256(b"notes\n").to_string();
    assert_eq!(desc["digest"], digest.as_str());
    assert_eq!(desc["size"], 6);
    assert_eq!(desc["mediaType"], "text/plain");
    assert_eq!(
        ok_bytes(&["blob", &format!("{}@{digest}", s(&lay))]),
        b"notes\n"
    );
    // A missing file: refused, and the layout the command would have created is not left.
    let other = dir.path().join("other");
    fails(&["blob", "put", s(&other), s(&dir.path().join("nope"))], 1);
    assert!(!other.exists());
}
