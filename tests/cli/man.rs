//! The man pages kept in `man/` are the ones the CLI generates.

use crate::util::*;

#[test]
fn man_pages_in_the_repo_are_current() {
    let dir = tempdir();
    ok(&["man", s(dir.path())]);
    let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let generated = snapshot(dir.path());
    assert!(generated.len() >= 10, "{:?}", generated.keys());
    assert_eq!(
        snapshot(&kept),
        generated,
        "man/ is stale: run `cargo run -- man man` and commit the result"
    );
    let page = String::from_utf8(
        generated[std::path::Path::new("strata-gc.1")]
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert!(page.contains("dry"), "{page}");
}
