//! Inputs probing issue 12's surface promises that the other suites do not try.

use crate::util::*;

/// `artifact push --subject` with a malformed digest is an invocation error (exit 2), as the
/// same text is for every other REF argument, and writes nothing.
#[test]
fn artifact_push_bad_subject_digest_is_exit_2() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let file = dir.path().join("f.txt");
    write(&file, b"x");
    let before = snapshot(&lay);
    for subject in ["@sha256:zz", "@sha256:", "@md5:00"] {
        let err = fails(
            &[
                "artifact",
                "push",
                &format!("{}:art", s(&lay)),
                s(&file),
                "--artifact-type",
                "application/x-test",
                "--disable-path-validation",
                "--subject",
                subject,
            ],
            2,
        );
        assert!(err.contains("--subject"), "{subject}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}
