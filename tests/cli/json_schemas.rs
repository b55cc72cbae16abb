//! The CLI's machine-facing surface: every `--json` document checked against its published
//! schema (tests/schemas/), and the flag a library error's missing choice is spelled with,
//! which only the CLI knows.

use std::path::Path;

use crate::util::*;

/// A layout at `dir/lay` with images tagged `a` and `b`.
fn two_images(dir: &Path) -> String {
    layout_with_images(dir, "lay", &["a", "b"]);
    s(&dir.join("lay")).to_owned()
}

#[test]
fn a_repack_with_no_tag_to_write_names_tag() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let digest = json(&["inspect", &format!("{lay}:a"), "--json"])["manifest"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &format!("{lay}@{digest}"), s(&bundle)]);
    let err = fails(&["repack", s(&bundle)], 1);
    assert!(err.contains("name the tag to write; give --tag"), "{err}");
}

#[test]
fn an_import_that_would_move_a_tag_names_force() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let archive = dir.path().join("a.tar");
    ok(&["export", &format!("{lay}:a"), "-o", s(&archive)]);
    // Another layout whose `a` is another image.
    let other = dir.path().join("other");
    let layout = strata::Layout::init(&other).unwrap();
    let image = write_image(&layout, &["z"], "amd64");
    add_entry(&layout, &image.manifest, Some("a"));
    let before = snapshot(&other);
    let err = fails(&["import", s(&archive), s(&other)], 1);
    assert!(
        err.contains("existing tags are moved only when asked; give --force"),
        "{err}"
    );
    assert_eq!(snapshot(&other), before);
}

#[test]
fn an_incremental_docker_archive_is_refused_before_anything_is_read() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let err = fails(
        &[
            "export",
            &format!("{lay}:a"),
            "--format",
            "docker",
            "--exclude-present-in",
            &lay,
            "-o",
            s(&dir.path().join("x.tar")),
        ],
        2,
    );
    assert!(
        err.contains("--exclude-present-in needs --format oci"),
        "{err}"
    );
    assert!(!dir.path().join("x.tar").exists());
}

#[test]
fn a_bad_config_value_is_named_by_its_flag_and_its_meaning() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let err = fails(&["config", &format!("{lay}:a"), "--volume", "data"], 2);
    assert!(err.contains("--volume"), "{err}");
    assert!(
        err.contains("the volume \"data\": must be an absolute path"),
        "{err}"
    );
    let err = fails(&["config", &format!("{lay}:a"), "--expose", "0"], 2);
    assert!(err.contains("the exposed port \"0\""), "{err}");
}

/// The schemas under tests/schemas/, found by the last segment of their `$id`s, so that
/// `$ref`s between them resolve without a network.
struct SchemaFiles;

const SCHEMA_BASE: &str = "https://strata.example/schemas/";

fn schema_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")
}

fn read_schema(name: &str) -> serde_json::Value {
    let path = schema_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl jsonschema::Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix(SCHEMA_BASE)
            .ok_or_else(|| format!("{uri} is not one of strata's schemas"))?;
        Ok(read_schema(name))
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema = read_schema(&format!("{name}.json"));
    assert_eq!(schema["$id"], format!("{SCHEMA_BASE}{name}.json"));
    jsonschema::options()
        .with_retriever(SchemaFiles)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// Schemas checked by tests/cli/registry_json.rs, against a running registry.
pub const REGISTRY_SCHEMAS: [&str; 4] = ["login.json", "ls-tags.json", "pull.json", "push.json"];

/// The schema's complaints about `doc`, one a line.
pub fn complaints(name: &str, doc: &serde_json::Value) -> Vec<String> {
    validator(name)
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Runs `args` (adding `--json`), expects `code`, and checks stdout against `schema`.
fn check(checked: &mut Vec<&'static str>, schema: &'static str, args: &[&str], code: i32) {
    let mut args = args.to_vec();
    args.push("--json");
    let r = run(&args);
    assert_eq!(r.code, code, "strata {args:?}: {}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("strata {args:?} printed no JSON ({e}): {}", r.stdout));
    let errors = complaints(schema, &doc);
    assert!(
        errors.is_empty(),
        "strata {args:?} does not follow tests/schemas/{schema}.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
    checked.push(schema);
}

#[test]
fn every_json_document_follows_its_schema() {
    let dir = tempdir();
    let at = |name: &str| dir.path().join(name);
    let lay = s(&at("lay")).to_owned();
    let r = |suffix: &str| format!("{lay}{suffix}");
    let tree = at("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/hello"), b"hi\n");
    write(&at("file.txt"), b"f\n");
    write(&at("layer.tar"), &tar_layer("extra"));
    let mut checked = Vec::new();
    let c = &mut checked;

    check(c, "init", &["init", &lay], 0);
    // The writers: one shape.
    check(c, "written", &["new", &r(":base")], 0);
    check(
        c,
        "written",
        &["build", s(&tree), &r(":app"), "--from", &r(":base")],
        0,
    );
    check(c, "written", &["config", &r(":app"), "--env", "A=1"], 0);
    check(
        c,
        "written",
        &["add-layer", &r(":app"), s(&at("layer.tar"))],
        0,
    );
    check(
        c,
        "written",
        &["insert", &r(":app"), s(&at("file.txt")), "/opt/f"],
        0,
    );
    check(c, "written", &["tag", &r(":app"), "app2"], 0);
    // A tag that moves says where from.
    check(c, "written", &["tag", &r(":base"), "app2"], 0);
    check(c, "untag", &["untag", &r(":app2")], 0);
    check(
        c,
        "written",
        &["index", "create", &r(":multi"), "--manifest", &r(":app")],
        0,
    );
    check(
        c,
        "written",
        &["index", "add", &r(":multi"), "--manifest", &r(":app")],
        0,
    );
    check(
        c,
        "written",
        &["index", "remove", &r(":multi"), "--platform", "linux/amd64"],
        0,
    );
    let file = s(&at("file.txt")).to_owned();
    check(
        c,
        "written",
        &[
            "artifact",
            "push",
            "--disable-path-validation",
            &r(":art"),
            "--artifact-type",
            "application/x",
            &file,
        ],
        0,
    );
    check(
        c,
        "written",
        &[
            "artifact",
            "attach",
            "--disable-path-validation",
            &r(":app"),
            "--artifact-type",
            "application/sig",
            &file,
        ],
        0,
    );

    // The readers and movers.
    check(
        c,
        "artifact-pull",
        &["artifact", "pull", &r(":art"), s(&at("out"))],
        0,
    );
    check(c, "referrers", &["referrers", &r(":app")], 0);
    check(c, "ls", &["ls", &lay], 0);
    check(c, "inspect", &["inspect", &r(":app")], 0);
    check(c, "inspect", &["inspect", &r(":art")], 0);
    check(c, "fsck", &["fsck", &lay], 0);
    check(c, "gc", &["gc", &lay, "--dry-run"], 0);
    check(c, "gc", &["gc", &lay], 0);
    let archive = s(&at("a.tar")).to_owned();
    check(c, "export", &["export", &r(":app"), "-o", &archive], 0);
    check(
        c,
        "export",
        &[
            "export",
            &r(":app"),
            "--format",
            "docker",
            "-o",
            s(&at("d.tar")),
        ],
        0,
    );
    check(
        c,
        "import",
        &["import", &archive, s(&at("lay2")), "--dry-run"],
        0,
    );
    check(c, "import", &["import", &archive, s(&at("lay2"))], 0);
    check(c, "import", &["import", s(&at("d.tar")), s(&at("lay4"))], 0);
    check(
        c,
        "copy",
        &["copy", &r(":app"), &format!("{}:app", s(&at("lay3")))],
        0,
    );
    let bundle = at("bundle");
    check(c, "unpack", &["unpack", &r(":app"), s(&bundle)], 0);
    write(&bundle.join("rootfs/new"), b"x\n");
    check(c, "repack", &["repack", s(&bundle)], 0);
    check(c, "repack", &["repack", s(&bundle), "--tag", "same"], 0);

    // The image operations.
    check(c, "files", &["files", &r(":app")], 0);
    check(c, "diff", &["diff", &r(":base"), &r(":app")], 0);
    check(c, "written", &["flatten", &r(":app"), "--tag", "flat"], 0);
    check(
        c,
        "written",
        &["convert", &r(":app"), "--compress", "zstd", "--tag", "z"],
        0,
    );
    check(
        c,
        "written",
        &[
            "rebase",
            &r(":app"),
            "--old-base",
            &r(":base"),
            "--new-base",
            &r(":base"),
            "--tag",
            "rb",
        ],
        0,
    );
    check(c, "blob-put", &["blob", "put", &lay, &file], 0);
    let manifest = ok_bytes(&["inspect", &r(":app"), "--raw", "manifest"]);
    write(&at("m.json"), &manifest);
    check(
        c,
        "written",
        &["manifest", "put", &r(":hand"), s(&at("m.json"))],
        0,
    );
    check(c, "copy-sync", &["copy", &lay, s(&at("synced"))], 0);
    // Outside any layout: the credential store.
    let logged_out = run_with_env(
        &["logout", "localhost:5000", "--json"],
        &[("DOCKER_CONFIG", s(&at("docker")))],
    );
    assert_eq!(logged_out.code, 0, "{}", logged_out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&logged_out.stdout).unwrap();
    assert!(complaints("logout", &doc).is_empty(), "{doc:#}");
    assert_eq!(doc["removed"], false, "{doc:#}");
    c.push("logout");

    // A damaged layout: ls's error and fsck's problems have their shapes too.
    let layout = strata::Layout::open(&lay).unwrap();
    let missing = strata::spec::Descriptor::new(
        strata::spec::media_type::MANIFEST,
        &sha256(b"not stored"),
        10,
    );
    add_entry(&layout, &missing, Some("gone"));
    check(c, "ls", &["ls", &lay], 0);
    check(c, "fsck", &["fsck", &lay], 1);

    // Every schema is used, and every command's document was checked.
    let mut files: Vec<String> = std::fs::read_dir(schema_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "common.json")
        // The registry commands' documents need a registry: registry_json.rs checks them.
        .filter(|n| !REGISTRY_SCHEMAS.contains(&n.as_str()))
        .collect();
    files.sort();
    let mut used: Vec<String> = checked.iter().map(|n| format!("{n}.json")).collect();
    used.sort();
    used.dedup();
    assert_eq!(files, used);
}

#[test]
fn the_schemas_are_strict() {
    let doc = serde_json::json!({
        "schemaVersion": 1,
        "manifest": format!("sha256:{}", "a".repeat(64)),
        "layers": 1,
        "entries": 2,
        "warnings": [],
    });
    assert!(complaints("unpack", &doc).is_empty());
    let mut extra = doc.clone();
    extra["extra_key"] = serde_json::json!(1);
    assert!(!complaints("unpack", &extra).is_empty(), "an unknown key");
    let mut short = doc.clone();
    short["manifest"] = serde_json::json!("sha256:abc");
    assert!(
        !complaints("unpack", &short).is_empty(),
        "a digest cut short"
    );
    let mut missing = doc.clone();
    missing.as_object_mut().unwrap().remove("entries");
    assert!(!complaints("unpack", &missing).is_empty(), "a key left out");
    let mut version = doc;
    version["schemaVersion"] = serde_json::json!(2);
    assert!(
        !complaints("unpack", &version).is_empty(),
        "another version"
    );
}

/// Every key a schema defines is camelCase: the documents' own keys (not the maps of
/// labels and annotations, whose keys are the user's).
#[test]
fn every_schema_key_is_camel_case() {
    fn walk(value: &serde_json::Value, file: &str, bad: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    for key in props.keys() {
                        let camel = key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                            && key.chars().all(|c| c.is_ascii_alphanumeric());
                        if !camel {
                            bad.push(format!("{file}: {key}"));
                        }
                    }
                }
                map.values().for_each(|v| walk(v, file, bad));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, file, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(schema_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        walk(&read_schema(&name), &name, &mut bad);
    }
    assert!(bad.is_empty(), "keys not in camelCase: {bad:?}");
}

/// Lines of `stderr` that start with `prefix` (after `strata: `).
fn lines_with(stderr: &str, prefix: &str) -> usize {
    stderr
        .lines()
        .filter(|l| {
            l.strip_prefix("strata: ")
                .is_some_and(|l| l.starts_with(prefix))
        })
        .count()
}

#[test]
fn verbose_adds_a_line_per_layer_and_blob_without_a_terminal() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    let image = format!("{lay}:built");
    let r = run(&[
        "-v",
        "build",
        s(&tree),
        &image,
        "--from",
        &format!("{lay}:a"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(lines_with(&r.stderr, "layer sha256:"), 1, "{}", r.stderr);
    assert!(r.stderr.contains(" written: "), "{}", r.stderr);
    assert_eq!(lines_with(&r.stderr, "layer diff_id"), 0, "-vv only");
    // -vv adds the diff_id.
    let r = run(&["-vv", "config", &image, "--env", "X=1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[
        "-vv",
        "add-layer",
        &image,
        s(&{
            let p = dir.path().join("l.tar");
            write(&p, &tar_layer("more"));
            p
        }),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        lines_with(&r.stderr, "layer diff_id sha256:"),
        1,
        "{}",
        r.stderr
    );

    // unpack: one line per layer (the base's, the build's, add-layer's).
    let r = run(&["-v", "unpack", &image, s(&dir.path().join("b"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        lines_with(&r.stderr, "layer 1/3 sha256:"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        lines_with(&r.stderr, "layer 3/3 sha256:"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(lines_with(&r.stderr, "layer "), 3, "{}", r.stderr);
    assert!(r.stderr.contains(" entries in ") || r.stderr.contains(" entry in "));
    assert_eq!(lines_with(&r.stderr, "  "), 0, "entries only with -vv");
    // -vv: a line per entry applied, as many as the unpack counts.
    let r = run(&["-vv", "unpack", &image, s(&dir.path().join("b3")), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        lines_with(&r.stderr, "  ") as u64,
        report["entries"].as_u64().unwrap(),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("strata:   f\n"), "{}", r.stderr);

    // The transfers: one line per blob (manifest, config, three layers).
    let archive = dir.path().join("a.tar");
    let r = run(&["-v", "export", &image, "-o", s(&archive)]);
    assert_eq!(lines_with(&r.stderr, "export: sha256:"), 5, "{}", r.stderr);
    let r = run(&["-v", "import", s(&archive), s(&dir.path().join("l2"))]);
    assert_eq!(lines_with(&r.stderr, "import: sha256:"), 5, "{}", r.stderr);
    let r = run(&[
        "-v",
        "copy",
        &image,
        &format!("{}:c", s(&dir.path().join("l3"))),
    ]);
    assert_eq!(lines_with(&r.stderr, "copy: sha256:"), 5, "{}", r.stderr);
    // repack: the layer it wrote, with its size.
    write(&dir.path().join("b/rootfs/new"), b"n\n");
    let r = run(&["-v", "repack", s(&dir.path().join("b")), "--tag", "rp"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(lines_with(&r.stderr, "layer sha256:"), 1, "{}", r.stderr);
    assert!(r.stderr.contains(" bytes)"), "{}", r.stderr);

    // Without -v, none of it; -v and -q do not go together.
    let r = run(&["unpack", &image, s(&dir.path().join("b2"))]);
    assert_eq!(lines_with(&r.stderr, "layer "), 0, "{}", r.stderr);
    let r = run(&["export", &image, "-o", s(&dir.path().join("b.tar"))]);
    assert_eq!(lines_with(&r.stderr, "export: "), 0, "{}", r.stderr);
    fails(&["-v", "-q", "ls", &lay], 2);
}

/// Runs strata with stderr on a terminal (`script` gives it one) and returns what the
/// terminal showed; stdout goes nowhere.
fn on_a_terminal(args: &[&str]) -> String {
    let line = std::iter::once(strata_bin())
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{line} >/dev/null"), "/dev/null"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running script (util-linux)");
    assert!(out.status.success(), "strata {args:?} under script failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn layer_writers_draw_a_progress_line_only_on_a_terminal_and_not_with_quiet() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    // Past a MiB of tar, so that the line is drawn at least once before the end.
    let noise: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&tree.join("big"), &noise);
    write(&dir.path().join("motd"), &noise);
    let drawn = |text: &str, label: &str| text.contains(&format!("\r\x1b[2K{label} "));

    let shown = on_a_terminal(&["build", s(&tree), &format!("{lay}:t")]);
    assert!(drawn(&shown, "build"), "{shown:?}");
    assert!(shown.contains("MiB"), "{shown:?}");
    let shown = on_a_terminal(&[
        "insert",
        &format!("{lay}:t"),
        s(&dir.path().join("motd")),
        "/m",
    ]);
    assert!(drawn(&shown, "insert"), "{shown:?}");
    let bundle = dir.path().join("b");
    ok(&["unpack", &format!("{lay}:a"), s(&bundle)]);
    write(&bundle.join("rootfs/big"), &noise);
    let shown = on_a_terminal(&["repack", s(&bundle), "--tag", "r"]);
    assert!(drawn(&shown, "repack"), "{shown:?}");

    // -q: nothing, even on a terminal.
    let shown = on_a_terminal(&["-q", "build", s(&tree), &format!("{lay}:q")]);
    assert_eq!(shown, "");
    // stderr not a terminal: no line, no escape.
    let r = run(&["build", s(&tree), &format!("{lay}:p")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stderr.contains('\r') && !r.stderr.contains('\x1b'),
        "{:?}",
        r.stderr
    );
}
