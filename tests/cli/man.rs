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

/// A page for every command at every depth, each with the sections a reader looks for, the
/// synopsis naming the command as typed, and no warning from groff's man macros.
#[test]
fn every_command_at_every_depth_has_a_complete_page() {
    let dir = tempdir();
    ok(&["man", s(dir.path())]);
    for (group, subs) in [
        ("artifact", &["push", "attach", "pull"][..]),
        ("index", &["create", "add", "remove"][..]),
    ] {
        for sub in subs {
            let page = dir.path().join(format!("strata-{group}-{sub}.1"));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            assert!(
                text.contains(&format!("strata {group} {sub}")),
                "{}: the synopsis does not name `strata {group} {sub}`",
                page.display()
            );
            assert!(text.contains(&format!("strata\\-{group}(1)")), "{text}");
        }
    }
    let mut pages = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let page = entry.unwrap().path();
        let text = std::fs::read_to_string(&page).unwrap();
        // ENVIRONMENT only where a variable acts on the command (man_platform checks which).
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "\"EXIT STATUS\"",
            "\"SEE ALSO\"",
        ] {
            assert!(
                text.contains(&format!(".SH {section}")),
                "{}: no {section} section",
                page.display()
            );
        }
        if peer("groff") {
            let out = std::process::Command::new("groff")
                .args(["-man", "-ww", "-z", "-K", "utf8"])
                .arg(&page)
                .output()
                .unwrap();
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && warnings.trim().is_empty(),
                "{}: groff: {warnings}",
                page.display()
            );
        }
        pages += 1;
    }
    assert!(pages >= 29, "{pages} pages");
    let unpack = std::fs::read_to_string(dir.path().join("strata-unpack.1")).unwrap();
    assert!(unpack.contains(".SH REFERENCES") && unpack.contains(".SH EXAMPLES"));
}
