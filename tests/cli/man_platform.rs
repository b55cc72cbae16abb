//! What the man pages say each command takes is what it takes; --platform is named where it
//! would help and its silence on a single image is broken; sizes and STRATA_THREADS errors
//! are worded right.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::*;

/// The commands that read SOURCE_DATE_EPOCH, as their pages are named.
const EPOCH_PAGES: &[&str] = &[
    "strata-new",
    "strata-build",
    "strata-config",
    "strata-add-layer",
    "strata-insert",
    "strata-flatten",
    "strata-rebase",
    "strata-repack",
    "strata-export",
    "strata-artifact-push",
    "strata-artifact-attach",
];

/// The text of a page's section `name` (up to the next `.SH`), empty when it has none.
fn section<'a>(page: &'a str, name: &str) -> &'a str {
    let Some(start) = page.find(&format!(".SH {name}\n")) else {
        return "";
    };
    let body = &page[start + 4 + name.len()..];
    &body[..body.find("\n.SH ").unwrap_or(body.len())]
}

/// The long flags (`--platform`) roff text names.
fn flags(text: &str) -> BTreeSet<String> {
    let text = text
        .replace("\\-", "-")
        .replace("\\fB", " ")
        .replace("\\fR", " ");
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

fn pages() -> Vec<(String, String)> {
    let dir = tempdir();
    ok(&["man", s(dir.path())]);
    let mut pages: Vec<(String, String)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    pages.sort();
    assert!(pages.len() >= 40, "{} pages", pages.len());
    pages
}

#[test]
fn each_page_names_only_the_flags_and_variables_its_command_has() {
    for (name, page) in pages() {
        let synopsis = flags(section(&page, "SYNOPSIS"));
        let references = flags(section(&page, "REFERENCES"));
        let stray: Vec<&String> = references.difference(&synopsis).collect();
        assert!(
            stray.is_empty(),
            "{name}: REFERENCES names {stray:?}, which `{name}` does not take"
        );
        let environment = section(&page, "ENVIRONMENT");
        let lists = |var: &str| environment.contains(&format!("\\fB{var}\\fR"));
        if name == "strata" {
            // The overview lists every variable and says which commands read it.
            for var in ["SOURCE_DATE_EPOCH", "STRATA_THREADS", "STRATA_RESOLVE"] {
                assert!(lists(var), "strata(1) does not list {var}");
            }
            assert!(environment.contains("export"), "{environment}");
            assert!(environment.contains("artifact push"), "{environment}");
            assert!(
                synopsis.contains("--version"),
                "{}",
                section(&page, "SYNOPSIS")
            );
            continue;
        }
        assert_eq!(
            lists("SOURCE_DATE_EPOCH"),
            EPOCH_PAGES.contains(&name.as_str()),
            "{name}: SOURCE_DATE_EPOCH listed or not: {environment}"
        );
        assert_eq!(
            lists("STRATA_THREADS"),
            synopsis.contains("--threads"),
            "{name}: STRATA_THREADS listed or not: {environment}"
        );
        assert_eq!(
            lists("STRATA_RESOLVE"),
            name == "strata-unpack",
            "{name}: {environment}"
        );
        // Registry commands take --plain-http; login and logout touch the credentials.
        let registry = synopsis.contains("--plain-http");
        assert_eq!(
            lists("HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY"),
            registry,
            "{name}"
        );
        assert_eq!(
            lists("DOCKER_CONFIG, REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR"),
            registry || name == "strata-logout",
            "{name}"
        );
        assert!(
            !synopsis.contains("--version"),
            "{name}: only strata takes --version: {}",
            section(&page, "SYNOPSIS")
        );
    }
}

#[test]
fn version_is_the_top_level_command_s_alone() {
    assert!(ok(&["--version"]).starts_with("strata "));
    let err = fails(&["tag", "--version"], 2);
    assert!(err.contains("--version"), "{err}");
    fails(&["artifact", "push", "--version"], 2);
}

/// A layout `lay` holding `v1`, a single amd64 image, and `multi`, an index of one arm64
/// image.
fn platforms_layout(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("lay");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["a"], "amd64");
    add_entry(&layout, &amd.manifest, Some("v1"));
    let arm = write_image(&layout, &["b"], "arm64");
    let index = write_index(&layout, &[&arm]);
    add_entry(&layout, &index, Some("multi"));
    path
}

#[test]
fn no_platform_in_an_index_says_to_give_platform() {
    let dir = tempdir();
    let lay = platforms_layout(dir.path());
    let multi = format!("{}:multi", lay.display());
    for args in [
        vec!["inspect", "--platform", "linux/amd64", &multi],
        vec!["cat", "--platform", "linux/amd64", &multi, "/a"],
    ] {
        let err = fails(&args, 1);
        assert!(
            err.contains("(available: linux/arm64); give --platform"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn platform_given_for_a_single_image_of_another_platform_is_warned_of() {
    let dir = tempdir();
    let lay = platforms_layout(dir.path());
    let v1 = format!("{}:v1", lay.display());
    let multi = format!("{}:multi", lay.display());
    let bundle = dir.path().join("b");
    let out = dir.path().join("out.tar");
    let warning = format!(
        "{v1} is a single linux/amd64 image: --platform linux/arm64 picks only out of an index"
    );
    for args in [
        vec![
            "unpack",
            "--rootless",
            "--platform",
            "linux/arm64",
            &v1,
            s(&bundle),
        ],
        vec!["cat", "--platform", "linux/arm64", &v1, "/files/a.txt"],
        vec!["inspect", "--platform", "linux/arm64", &v1],
        vec!["export", "--platform", "linux/arm64", &v1, "-o", s(&out)],
        vec!["files", "--platform", "linux/arm64", &v1],
        vec![
            "config",
            "--platform",
            "linux/arm64",
            &v1,
            "--env",
            "A=1",
            "--tag",
            "v2",
        ],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(&warning), "{args:?}: {}", r.stderr);
    }
    // Nothing to say: the platform matches, none was given, or an index was picked from.
    for args in [
        vec!["inspect", "--platform", "linux/amd64", &v1],
        vec!["inspect", &v1],
        vec!["inspect", "--platform", "linux/arm64", &multi],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("warning"), "{args:?}: {}", r.stderr);
    }
    // build writes its REF: only the base --from names is picked from.
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"x");
    let r = run(&[
        "build",
        "--platform",
        "linux/arm64",
        "--from",
        &multi,
        s(&tree),
        &v1,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("picks only"), "{}", r.stderr);
}

/// Commands that read SOURCE_DATE_EPOCH refuse a bad one; those whose pages do not list it
/// do not read it.
#[test]
fn source_date_epoch_is_read_by_the_commands_whose_pages_list_it() {
    let dir = tempdir();
    let lay = platforms_layout(dir.path());
    let v1 = format!("{}:v1", lay.display());
    let artifact_dir = dir.path().join("files");
    std::fs::create_dir(&artifact_dir).unwrap();
    write(&artifact_dir.join("f"), b"x");
    let out = dir.path().join("out.tar");
    let copy = dir.path().join("copy");
    let bad = [("SOURCE_DATE_EPOCH", "-5")];
    let art = format!("{}:art", lay.display());
    let reading: Vec<(&str, Vec<&str>)> = vec![
        ("strata-export", vec!["export", &v1, "-o", s(&out)]),
        ("strata-flatten", vec!["flatten", &v1, "--tag", "flat"]),
        (
            "strata-config",
            vec!["config", &v1, "--env", "A=1", "--tag", "c"],
        ),
        (
            "strata-artifact-push",
            vec![
                "artifact",
                "push",
                "--disable-path-validation",
                "--artifact-type",
                "a/b",
                &art,
                s(&artifact_dir),
            ],
        ),
    ];
    for (page, args) in &reading {
        assert!(EPOCH_PAGES.contains(page));
        let r = run_with_env(args, &bad);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("SOURCE_DATE_EPOCH"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let not_reading: Vec<(&str, Vec<&str>)> = vec![
        (
            "strata-convert",
            vec!["convert", &v1, "--compress", "zstd", "--tag", "z"],
        ),
        ("strata-tag", vec!["tag", &v1, "v9"]),
        ("strata-copy", vec!["copy", &v1, s(&copy)]),
        ("strata-inspect", vec!["inspect", &v1]),
        ("strata-gc", vec!["gc", s(&lay)]),
    ];
    for (page, args) in &not_reading {
        assert!(!EPOCH_PAGES.contains(page));
        let r = run_with_env(args, &bad);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_bad_strata_threads_is_blamed_on_the_variable() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"x");
    let target = format!("{}:v1", dir.path().join("lay").display());
    let r = run_with_env(&["build", s(&tree), &target], &[("STRATA_THREADS", "abc")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("STRATA_THREADS=abc: not a number of threads (1 to 1024)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("'--threads"), "{}", r.stderr);
    assert!(!dir.path().join("lay").exists());
    let zero = run_with_env(&["build", s(&tree), &target], &[("STRATA_THREADS", "0")]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    assert!(zero.stderr.contains("STRATA_THREADS=0"), "{}", zero.stderr);
    // The flag wins over the variable; a command without --threads ignores it.
    let r = run_with_env(
        &["build", "--threads", "2", s(&tree), &target],
        &[("STRATA_THREADS", "abc")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_with_env(
        &["ls", s(&dir.path().join("lay"))],
        &[("STRATA_THREADS", "abc")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_with_env(&["build", s(&tree), &target], &[("STRATA_THREADS", "3")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn one_byte_is_one_byte() {
    let dir = tempdir();
    let path = dir.path().join("lay");
    let layout = strata::Layout::init(&path).unwrap();
    // gc of a lone 1-byte blob.
    layout.put_blob(b"x").unwrap();
    let r = run(&["-v", "gc", s(&path)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 B (1 byte)"), "{}", r.stderr);
    assert!(!r.stderr.contains("1 bytes"), "{}", r.stderr);
    // fsck of a 1-byte layer whose descriptor says 2.
    let blob = layout.put_blob(b"x").unwrap();
    let config = layout.put_blob(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": strata::spec::media_type::MANIFEST,
        "config": strata::spec::Descriptor::new(strata::spec::media_type::CONFIG, &config.digest, config.size),
        "layers": [strata::spec::Descriptor::new(strata::spec::media_type::LAYER_TAR, &blob.digest, 2)],
    });
    let stored = layout
        .put_blob(&strata::spec::to_canonical_json(&manifest))
        .unwrap();
    add_entry(
        &layout,
        &strata::spec::Descriptor::new(
            strata::spec::media_type::MANIFEST,
            &stored.digest,
            stored.size,
        ),
        Some("v1"),
    );
    let r = run(&["fsck", s(&path)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("blob has 1 byte,"), "{all}");
    assert!(!all.contains("1 bytes"), "{all}");
}
