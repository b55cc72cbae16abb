//! Artifacts seen as artifacts: `ls` and `inspect` say what an artifact is and what it
//! refers to, `artifact push` takes relative paths and directories as oras does, `artifact
//! pull` unpacks directories.

use std::path::Path;

use strata::spec::{media_type, to_canonical_json, Descriptor};

use crate::util::*;

/// A layout at `dir/lay` with the image `img` (one layer) and, pushed with `--subject
/// :img`, the artifact `sbom` holding one file; the image's digest.
fn image_and_sbom(dir: &Path) -> (String, String) {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let image = write_image(&layout, &["base"], "amd64");
    add_entry(&layout, &image.manifest, Some("img"));
    let file = dir.join("sbom.json");
    std::fs::write(&file, br#"{"packages":[]}"#).unwrap();
    let lay = s(&dir.join("lay")).to_owned();
    ok(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &format!("{lay}:sbom"),
        "--artifact-type",
        "application/vnd.example.sbom+json",
        "--subject",
        ":img",
        &format!("{}:application/spdx+json", s(&file)),
    ]);
    (lay, image.manifest.digest.clone())
}

fn entry<'a>(listed: &'a serde_json::Value, tag: &str) -> &'a serde_json::Value {
    listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["tag"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {listed:#}"))
}

/// The bytes of a manifest and the blobs it names directly.
fn own_bytes(layout: &str, tag: &str) -> u64 {
    let raw = ok_bytes(&["inspect", &format!("{layout}:{tag}"), "--raw", "manifest"]);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let layers: u64 = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    raw.len() as u64 + m["config"]["size"].as_u64().unwrap() + layers
}

#[test]
fn ls_json_gives_an_artifacts_type_subject_and_own_size() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let listed = json(&["ls", &lay, "--json"]);
    let sbom = entry(&listed, "sbom");
    assert_eq!(sbom["artifactType"], "application/vnd.example.sbom+json");
    assert_eq!(sbom["subject"], image.as_str());
    // Its own manifest, config and file: not the image it describes.
    assert_eq!(sbom["size"], own_bytes(&lay, "sbom"), "{listed:#}");
    let img = entry(&listed, "img");
    assert!(img["artifactType"].is_null(), "{listed:#}");
    assert!(img["subject"].is_null(), "{listed:#}");
    assert_eq!(img["size"], own_bytes(&lay, "img"), "{listed:#}");
    assert_eq!(img["platforms"], serde_json::json!(["linux/amd64"]));
}

#[test]
fn ls_takes_an_artifacts_type_from_its_config_when_artifact_type_is_absent() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    let config = layout.put_blob(b"{\"chart\":1}").unwrap();
    let body = layout.put_blob(b"chart").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "config": Descriptor::new("application/vnd.cncf.helm.config.v1+json", &config.digest, config.size),
        "layers": [Descriptor::new("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &body.digest, body.size)],
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("chart"),
    );
    let listed = json(&["ls", s(&dir.path().join("lay")), "--json"]);
    let chart = entry(&listed, "chart");
    assert_eq!(
        chart["artifactType"], "application/vnd.cncf.helm.config.v1+json",
        "{listed:#}"
    );
    assert!(chart["subject"].is_null());
    assert!(chart["platforms"].as_array().unwrap().is_empty());
}

#[test]
fn ls_shows_an_artifacts_type_and_subject_and_keeps_image_rows() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let out = ok(&["ls", &lay]);
    let row = |tag: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let short = format!("sha256:{}", &image["sha256:".len()..][..12]);
    let sbom = row("sbom");
    assert_eq!(sbom[2], "artifact", "{out}");
    assert_eq!(
        &sbom[5..],
        ["application/vnd.example.sbom+json", "->", short.as_str()],
        "{out}"
    );
    let img = row("img");
    assert_eq!(img[2], "manifest", "{out}");
    assert_eq!(&img[5..], ["linux/amd64"], "{out}");
}

#[test]
fn ls_help_says_what_size_counts() {
    let help = ok(&["ls", "--help"]);
    assert!(help.contains("SIZE is the entry's own"), "{help}");
    assert!(help.contains("subject"), "{help}");
}

#[test]
fn inspect_json_of_an_artifact_has_its_type_subject_files_and_annotations() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let sbom = json(&["inspect", &format!("{lay}:sbom"), "--json"]);
    assert_eq!(sbom["artifactType"], "application/vnd.example.sbom+json");
    assert_eq!(sbom["subject"], image.as_str());
    let files = sbom["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{sbom:#}");
    assert_eq!(files[0]["title"], "sbom.json");
    assert_eq!(files[0]["mediaType"], "application/spdx+json");
    assert_eq!(files[0]["size"], 15);
    assert_eq!(files[0]["digest"], sbom["layers"][0]["digest"]);
    assert!(sbom["annotations"].is_object(), "{sbom:#}");
    // An image has no files, and refers to nothing.
    let img = json(&["inspect", &format!("{lay}:img"), "--json"]);
    assert!(img.get("files").is_none(), "{img:#}");
    assert!(
        img["artifactType"].is_null() && img["subject"].is_null(),
        "{img:#}"
    );
}

#[test]
fn inspect_of_an_artifact_shows_files_not_empty_image_fields() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    write_artifact(&layout, "art", &[("notes.txt", "hello")]);
    // A layer without a title, as other tools may write.
    let loose = layout.put_blob(b"loose").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &sha256(b"{}"), 2),
        "layers": [Descriptor::new("text/plain", &loose.digest, loose.size)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("loose"),
    );
    let lay = s(&dir.path().join("lay")).to_owned();
    let out = ok(&["inspect", &format!("{lay}:art")]);
    for absent in [
        "Platform:",
        "Entrypoint:",
        "Cmd:",
        "WorkingDir:",
        "User:",
        "Created:",
    ] {
        assert!(!out.contains(absent), "{absent} in\n{out}");
    }
    assert!(out.contains("Artifact:   application/x"), "{out}");
    let hello = sha256(b"hello").to_string();
    assert!(
        out.lines().any(
            |l| l.trim_start().starts_with(&format!("notes.txt  {hello}"))
                && l.trim_end().ends_with("text/plain")
        ),
        "{out}"
    );
    let out = ok(&["inspect", &format!("{lay}:loose")]);
    assert!(
        out.contains(&format!("(untitled)  {}", loose.digest)),
        "{out}"
    );
    assert!(
        out.contains("Annotations:\n  org.opencontainers.image.created=2024-01-01T00:00:00Z"),
        "{out}"
    );
    // Images are shown as before.
    let image = write_image(&layout, &["base"], "amd64");
    add_entry(&layout, &image.manifest, Some("img"));
    let out = ok(&["inspect", &format!("{lay}:img")]);
    assert!(out.contains("Platform:   linux/amd64"), "{out}");
    assert!(out.contains("Cmd:        [\"/bin/sh\"]"), "{out}");
    assert!(!out.contains("Files:"), "{out}");
}

/// Runs strata in `cwd`, asserting exit `code`; (stdout, stderr).
fn run_in(cwd: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = strata(args).current_dir(cwd).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The manifest tagged `tag` in the layout at `lay`.
fn manifest(lay: &str, tag: &str) -> serde_json::Value {
    serde_json::from_slice(&ok_bytes(&[
        "inspect",
        &format!("{lay}:{tag}"),
        "--raw",
        "manifest",
    ]))
    .unwrap()
}

fn blob(lay: &str, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(Path::new(lay).join("blobs/sha256").join(hex)).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A tree `work/site` (`index.html`, `css/a.css`) and a file `work/docs/readme.txt`.
fn work_tree(dir: &Path) -> std::path::PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("site/css")).unwrap();
    std::fs::create_dir_all(work.join("docs")).unwrap();
    std::fs::write(work.join("site/index.html"), "<p>hi</p>").unwrap();
    std::fs::write(work.join("site/css/a.css"), "p{}").unwrap();
    std::fs::write(work.join("docs/readme.txt"), "read me").unwrap();
    work
}

#[test]
fn push_titles_files_by_their_relative_path_as_given() {
    let dir = tempdir();
    let work = work_tree(dir.path());
    let lay = s(&dir.path().join("lay")).to_owned();
    run_in(
        &work,
        &[
            "artifact",
            "push",
            &format!("{lay}:docs"),
            "--artifact-type",
            "application/x",
            "./docs/readme.txt",
        ],
        0,
    );
    let m = manifest(&lay, "docs");
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "docs/readme.txt"
    );
    let out = dir.path().join("out");
    ok(&["artifact", "pull", &format!("{lay}:docs"), s(&out)]);
    assert_eq!(
        std::fs::read_to_string(out.join("docs/readme.txt")).unwrap(),
        "read me"
    );
    let err = run_in(
        &work,
        &[
            "artifact",
            "push",
            &format!("{lay}:up"),
            "--artifact-type",
            "application/x",
            "docs/../docs/readme.txt",
        ],
        2,
    )
    .1;
    assert!(
        err.contains("docs/../docs/readme.txt") && err.contains(".."),
        "{err}"
    );
}

#[test]
fn push_stores_a_directory_as_oras_does_and_pull_unpacks_it() {
    let dir = tempdir();
    let work = work_tree(dir.path());
    let lay = s(&dir.path().join("lay")).to_owned();
    let push = |lay: &str| {
        run_in(
            &work,
            &[
                "artifact",
                "push",
                &format!("{lay}:site"),
                "--artifact-type",
                "application/x",
                "site",
                "docs/readme.txt",
            ],
            0,
        )
    };
    push(&lay);
    let m = manifest(&lay, "site");
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let stored = blob(&lay, layer["digest"].as_str().unwrap());
    let tar = gunzip(&stored);
    // oras's annotations, byte for byte: its content digest is the uncompressed tar's.
    let annotations: std::collections::BTreeMap<String, String> =
        serde_json::from_value(layer["annotations"].clone()).unwrap();
    let want: std::collections::BTreeMap<String, String> = [
        ("io.deis.oras.content.digest", sha256(&tar).to_string()),
        ("io.deis.oras.content.unpack", "true".to_owned()),
        ("org.opencontainers.image.title", "site".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(annotations, want);
    // Entries under the title, owned by root, as oras's tar has them.
    let mut archive = tar::Archive::new(&tar[..]);
    let entries: Vec<(String, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["site/", "site/css/", "site/css/a.css", "site/index.html"]
    );
    assert!(entries.iter().all(|e| e.1 == 0 && e.2 == 0), "{entries:?}");
    // Reproducible: the same tree pushed elsewhere gives the same layer.
    let other = s(&dir.path().join("other")).to_owned();
    push(&other);
    assert_eq!(
        manifest(&other, "site")["layers"][0]["digest"],
        layer["digest"]
    );

    let out = dir.path().join("out");
    let (stdout, _) = run_in(
        dir.path(),
        &["artifact", "pull", &format!("{lay}:site"), s(&out)],
        0,
    );
    assert!(stdout.contains("site"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("site/css/a.css")).unwrap(),
        "p{}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("site/index.html")).unwrap(),
        "<p>hi</p>"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("docs/readme.txt")).unwrap(),
        "read me"
    );
    // A directory is never replaced, --overwrite or not; nothing changes.
    let before = snapshot(&out);
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut args = vec!["artifact", "pull", &*format!("{lay}:site"), s(&out)]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args, 1);
        assert!(err.contains("site"), "{err}");
        assert_eq!(snapshot(&out), before);
    }
}

/// An artifact tagged `tag` whose one layer is the gzip of `tar`, titled `title`, marked
/// for unpacking with `content_digest`.
fn dir_artifact(layout: &strata::Layout, tag: &str, title: &str, tar: &[u8], content_digest: &str) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tar).unwrap();
    let body = layout.put_blob(&gz.finish().unwrap()).unwrap();
    let empty = layout.put_blob(b"{}").unwrap();
    let mut layer = Descriptor::new(media_type::LAYER_TAR_GZIP, &body.digest, body.size);
    layer.set_annotation("org.opencontainers.image.title", Some(title));
    layer.set_annotation("io.deis.oras.content.unpack", Some("true"));
    layer.set_annotation("io.deis.oras.content.digest", Some(content_digest));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &empty.digest, empty.size),
        "layers": [layer],
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some(tag),
    );
}

fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        // Raw names: the tar crate refuses to write the hostile ones this test needs.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let data = if kind.is_symlink() || kind.is_hard_link() {
            h.as_old_mut().linkname[..body.len()].copy_from_slice(body.as_bytes());
            ""
        } else {
            body
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn pull_refuses_a_directory_layer_that_leaves_its_title_or_lies_about_its_digest() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    let lay = s(&dir.path().join("lay")).to_owned();
    let good = tar_of(&[("d/", Directory, ""), ("d/f", Regular, "x")]);
    dir_artifact(&layout, "lying", "d", &good, &sha256(b"other").to_string());
    let outside = tar_of(&[("d/", Directory, ""), ("e/f", Regular, "x")]);
    dir_artifact(
        &layout,
        "outside",
        "d",
        &outside,
        &sha256(&outside).to_string(),
    );
    let dotdot = tar_of(&[("d/", Directory, ""), ("d/../f", Regular, "x")]);
    dir_artifact(
        &layout,
        "dotdot",
        "d",
        &dotdot,
        &sha256(&dotdot).to_string(),
    );
    let link = tar_of(&[("d/", Directory, ""), ("d/l", Symlink, "../../etc/passwd")]);
    dir_artifact(&layout, "link", "d", &link, &sha256(&link).to_string());
    let through = tar_of(&[("d/l", Symlink, "."), ("d/l/f", Regular, "x")]);
    dir_artifact(
        &layout,
        "through",
        "d",
        &through,
        &sha256(&through).to_string(),
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), "kept").unwrap();
    let before = snapshot(&out);
    for (tag, says) in [
        ("lying", "io.deis.oras.content.digest"),
        ("outside", "not under the layer's title"),
        ("dotdot", ".."),
        ("link", "leads out"),
        ("through", "not a directory"),
    ] {
        let err = fails(&["artifact", "pull", &format!("{lay}:{tag}"), s(&out)], 1);
        assert!(err.contains(says), "{tag}: {err}");
        assert_eq!(snapshot(&out), before, "{tag}");
    }
    // The good tar with its true digest goes in.
    dir_artifact(&layout, "true", "d", &good, &sha256(&good).to_string());
    ok(&["artifact", "pull", &format!("{lay}:true"), s(&out)]);
    assert_eq!(std::fs::read_to_string(out.join("d/f")).unwrap(), "x");
}

#[test]
fn pull_warns_about_layers_without_a_title() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    let loose = layout.put_blob(b"loose").unwrap();
    let named = layout.put_blob(b"named").unwrap();
    let mut titled = Descriptor::new("text/plain", &named.digest, named.size);
    titled.set_annotation("org.opencontainers.image.title", Some("n.txt"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &sha256(b"{}"), 2),
        "layers": [Descriptor::new("text/plain", &loose.digest, loose.size), titled],
    });
    layout.put_blob(b"{}").unwrap();
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("a"),
    );
    let out = dir.path().join("out");
    let r = run(&[
        "artifact",
        "pull",
        &format!("{}:a", s(&dir.path().join("lay"))),
        s(&out),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&loose.digest.to_string()) && r.stderr.contains("no title"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(out.join("n.txt")).unwrap(), "named");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[test]
fn pull_of_a_directory_is_all_or_nothing_and_keeps_hard_links() {
    let dir = tempdir();
    let work = work_tree(dir.path());
    std::fs::hard_link(work.join("site/index.html"), work.join("site/same.html")).unwrap();
    let lay = s(&dir.path().join("lay")).to_owned();
    run_in(
        &work,
        &[
            "artifact",
            "push",
            &format!("{lay}:site"),
            "--artifact-type",
            "application/x",
            "site",
            "docs/readme.txt",
        ],
        0,
    );
    // A file in the way of the second title: the directory is not left behind either.
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("docs")).unwrap();
    std::fs::write(out.join("docs/readme.txt"), "mine").unwrap();
    let before = snapshot(&out);
    let err = fails(&["artifact", "pull", &format!("{lay}:site"), s(&out)], 1);
    assert!(err.contains("readme.txt"), "{err}");
    assert_eq!(snapshot(&out), before);
    ok(&[
        "artifact",
        "pull",
        &format!("{lay}:site"),
        s(&out),
        "--overwrite",
    ]);
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(out.join("site/index.html")).unwrap();
    let b = std::fs::metadata(out.join("site/same.html")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert_eq!(
        std::fs::read_to_string(out.join("docs/readme.txt")).unwrap(),
        "read me"
    );
}
