//! Image names on the command line, without a registry: what is refused before any
//! connection, and the hint for a registry image written where a layout was read.

use super::util::{fails, s, tempdir};

#[test]
fn bad_image_names_are_usage_errors_before_any_connection() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    for bad in [
        "Upper/Case",
        "localhost:5000/a:",
        "localhost:99999/a",
        "a//b",
    ] {
        let err = fails(&["pull", bad, s(&lay)], 2);
        assert!(err.contains("is not an image name"), "{bad}: {err}");
    }
    assert!(!lay.exists(), "a refused pull created the layout");
    let err = fails(&["ls", "docker://localhost:5000/app:1"], 2);
    assert!(err.contains("without a tag"), "{err}");
}

#[test]
fn a_registry_image_where_a_layout_is_read_is_answered_with_its_spelling() {
    let dir = tempdir();
    let name = "127.0.0.1:1/team/app";
    let err = fails(&["ls", name], 2);
    assert!(err.contains(&format!("docker://{name}")), "{err}");
    let err = fails(&["inspect", &format!("{name}:1")], 2);
    assert!(err.contains(&format!("docker://{name}:1")), "{err}");
    // A plain missing layout stays what it is.
    let missing = dir.path().join("nothere");
    let err = fails(&["inspect", &format!("{}:t", s(&missing))], 1);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn login_wants_the_password_on_stdin_and_a_registry_name() {
    let err = fails(&["login", "localhost:5000", "-u", "me"], 2);
    assert!(err.contains("--password-stdin"), "{err}");
    let err = fails(
        &["login", "not a registry", "-u", "me", "--password-stdin"],
        2,
    );
    assert!(err.contains("not"), "{err}");
}
