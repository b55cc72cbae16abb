//! The last attack's findings on hostile layers and images: cat's quick read, name limits
//! add-layer and fsck must share with unpack, and images unpack must not trip on.

use std::path::Path;

use crate::util::*;

/// A layout `lay` whose image `t` is `layers` (plain tars) in order; returns `lay`.
fn layered(dir: &Path, layers: &[Vec<u8>]) -> String {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let layers: Vec<_> = layers.iter().map(|t| (t.clone(), Packing::Plain)).collect();
    write_layered_image(&layout, "t", &layers, serde_json::json!({}));
    s(&dir.join("lay")).to_owned()
}

/// An entry below the path, later in the same layer or in a layer above, makes the path a
/// directory: cat printed the file the path had been.
#[test]
fn cat_refuses_a_path_that_something_below_made_a_directory() {
    let dir = tempdir();
    let mut low = TarBuilder::new();
    low.file("z", b"1", 0o644).file("etc/passwd", b"OLD\n", 0o644);
    let mut top = TarBuilder::new();
    top.file("a", b"SECRET-OLD\n", 0o644)
        .file("a/x", b"new", 0o644)
        .file("etc/passwd/x", b"1", 0o644);
    let lay = layered(dir.path(), &[low.finish(), top.finish()]);
    let image = format!("{lay}:t");
    for path in ["/a", "/etc/passwd"] {
        let r = run(&["cat", &image, path]);
        assert_ne!(r.code, 0, "cat {path} printed {:?}", r.stdout);
        assert!(!r.stdout.contains("OLD"), "{path}: {:?}", r.stdout);
    }
    assert_eq!(ok(&["cat", &image, "/a/x"]), "new");
}
