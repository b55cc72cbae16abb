//! Completions that know the layout: the dynamic completer driven the way bash's
//! registration script drives it, and the static scripts (nushell among them).

use std::path::Path;

use crate::util::*;

/// Asks strata for bash's candidates for `words` (the whole command line, program name
/// first), the word at `index` being completed, run in `cwd` as the shell's process is.
fn candidates(cwd: &Path, words: &[&str], index: usize) -> Vec<String> {
    let mut args = vec!["--"];
    args.extend_from_slice(words);
    let out = strata(&args)
        .current_dir(cwd)
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", index.to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "false")
        .env("_CLAP_IFS", "\n")
        .output()
        .expect("run strata");
    assert!(
        out.status.success(),
        "completion of {words:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn tags_complete_after_the_layout_and_colon() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app", "apt", "base"]);
    let got = candidates(dir.path(), &["strata", "inspect", "lay:a"], 2);
    assert_eq!(got, ["lay:app", "lay:apt"], "{got:?}");
    let all = candidates(dir.path(), &["strata", "inspect", "lay:"], 2);
    assert_eq!(all, ["lay:app", "lay:apt", "lay:base"], "{all:?}");
}

#[test]
fn every_ref_argument_completes_tags() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    for words in [
        &["strata", "copy", "lay:a", "x"][..],
        &["strata", "copy", "x", "lay:a"][..],
        &["strata", "build", "--from", "lay:a"][..],
        &["strata", "index", "create", "--manifest", "lay:a"][..],
        &["strata", "export", "lay:a"][..],
        &["strata", "add-layer", "lay:a"][..],
        &["strata", "build", "tree", "lay:a"][..],
    ] {
        let index = words.iter().position(|w| *w == "lay:a").unwrap();
        let got = candidates(dir.path(), words, index);
        assert!(got.contains(&"lay:app".to_owned()), "{words:?}: {got:?}");
    }
}

#[test]
fn directories_complete_and_layouts_offer_a_colon() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    std::fs::create_dir(dir.path().join("lazy")).unwrap();
    write(&dir.path().join("lamp"), b"a file, not a directory");
    let got = candidates(dir.path(), &["strata", "inspect", "la"], 2);
    assert!(got.contains(&"lay:".to_owned()), "{got:?}");
    assert!(got.contains(&"lay/".to_owned()), "{got:?}");
    assert!(got.contains(&"lazy/".to_owned()), "{got:?}");
    assert!(!got.contains(&"lazy:".to_owned()), "not a layout: {got:?}");
    assert!(!got.iter().any(|c| c.starts_with("lamp")), "{got:?}");
    let exact = candidates(dir.path(), &["strata", "inspect", "lay"], 2);
    assert!(exact.contains(&"lay:".to_owned()), "{exact:?}");
}

#[test]
fn a_broken_layout_gives_no_candidates_and_is_left_alone() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    write(&dir.path().join("lay/index.json"), b"{not json");
    let before = snapshot(dir.path());
    let got = candidates(dir.path(), &["strata", "inspect", "lay:a"], 2);
    assert!(got.is_empty(), "{got:?}");
    let missing = candidates(dir.path(), &["strata", "inspect", "nowhere:a"], 2);
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_digest_being_typed_gives_no_tags() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    let got = candidates(dir.path(), &["strata", "inspect", "lay@sha256:"], 2);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn bash_registration_script_calls_strata_back() {
    let r = run_with_env(&[], &[("COMPLETE", "bash")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("_clap_complete_strata"), "{}", r.stdout);
    assert!(r.stdout.contains("COMPLETE=\"bash\""), "{}", r.stdout);
}

#[test]
fn nushell_script_is_generated() {
    let nu = ok(&["completions", "nushell"]);
    assert!(nu.contains("export extern \"strata inspect\""), "{nu}");
    assert!(nu.contains("export extern \"strata index create\""), "{nu}");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(&["completions", shell]);
        assert!(script.contains("inspect"), "{shell}: {script}");
    }
}
