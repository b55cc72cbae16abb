//! Many strata processes on one layout at once: concurrent `tag`/`untag` lose none of each
//! other's entries, and a `gc` running beside them never removes a blob that the index.json
//! it leaves behind (or any index.json a concurrent reader sees) still reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};

use crate::util::*;

/// Starts a strata process; stdout is discarded, stderr kept for failure messages.
fn spawn(args: &[String]) -> (String, Child) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = strata(&refs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning strata {args:?}: {e}"));
    (args.join(" "), child)
}

/// Waits for a process and returns its exit code and stderr.
fn finish(what: &str, child: Child) -> (i32, String) {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for strata {what}: {e}"));
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("strata {what} was killed by a signal"));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits for every process and asserts each exited 0.
fn wait_all_ok(children: Vec<(String, Child)>) {
    for (what, child) in children {
        let (code, stderr) = finish(&what, child);
        assert_eq!(code, 0, "strata {what} exited {code}: {stderr}");
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// index.json parsed (it must be valid JSON) into its entries as (tag, digest).
fn entries(layout: &Path) -> Vec<(Option<String>, String)> {
    let raw = std::fs::read(layout.join("index.json")).expect("reading index.json");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "index.json is not JSON ({e}): {}",
            String::from_utf8_lossy(&raw)
        )
    });
    assert_eq!(index["schemaVersion"], 2, "index.json: {index}");
    index["manifests"]
        .as_array()
        .expect("index.json has a manifests array")
        .iter()
        .map(|m| {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_owned);
            let digest = m["digest"]
                .as_str()
                .expect("every entry has a digest")
                .to_owned();
            (tag, digest)
        })
        .collect()
}

/// Tag → digest, asserting no tag occurs twice.
fn tag_map(layout: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (tag, digest) in entries(layout) {
        if let Some(tag) = tag {
            if let Some(other) = out.insert(tag.clone(), digest.clone()) {
                panic!("tag {tag} occurs twice in index.json ({other} and {digest})");
            }
        }
    }
    out
}

fn fsck_json(layout: &Path) -> serde_json::Value {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "fsck found problems: {report}");
    report
}

#[test]
fn two_groups_of_fifty_taggers_lose_no_tag() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["base", "other"]);
    let root = layout.root().to_owned();
    let lay = s(&root).to_owned();
    let base = images[0].manifest.digest.clone();
    let other = images[1].manifest.digest.clone();

    // Two groups launched at once from two threads; every child is started before any is
    // waited for.
    let groups: Vec<Vec<(String, Child)>> = std::thread::scope(|scope| {
        let launch = |source: &'static str, prefix: &'static str| {
            let lay = lay.clone();
            scope.spawn(move || {
                (0..50)
                    .map(|i| {
                        spawn(&args(&[
                            "tag",
                            &format!("{lay}:{source}"),
                            &format!("{prefix}-{i}"),
                        ]))
                    })
                    .collect::<Vec<_>>()
            })
        };
        let a = launch("base", "a");
        let b = launch("other", "b");
        vec![a.join().expect("launcher a"), b.join().expect("launcher b")]
    });
    wait_all_ok(groups.into_iter().flatten().collect());

    let tags = tag_map(&root);
    assert_eq!(
        tags.len(),
        102,
        "expected 100 new tags and the 2 original ones: {tags:?}"
    );
    assert_eq!(entries(&root).len(), 102, "one entry per tag");
    assert_eq!(tags["base"], base);
    assert_eq!(tags["other"], other);
    for i in 0..50 {
        assert_eq!(tags.get(&format!("a-{i}")), Some(&base), "a-{i}");
        assert_eq!(tags.get(&format!("b-{i}")), Some(&other), "b-{i}");
    }
    ok(&["fsck", &lay]);
    // Every writer renamed its temp file into place: none is left behind.
    let tmp = root.join(strata::layout::TMP_DIR);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "temp files left in {}: {left:?}",
        tmp.display()
    );
    let listing = json(&["ls", &lay, "--json"]);
    assert_eq!(listing["images"].as_array().expect("images").len(), 102);
}

#[test]
fn many_processes_giving_one_tag_to_different_images_leave_one_entry() {
    let dir = tempdir();
    let names = ["img-0", "img-1", "img-2", "img-3"];
    let (layout, images) = layout_with_images(dir.path(), "lay", &names);
    let root = layout.root().to_owned();
    let lay = s(&root).to_owned();

    let children: Vec<_> = (0..40)
        .map(|i| {
            spawn(&args(&[
                "tag",
                &format!("{lay}:{}", names[i % 4]),
                "contested",
            ]))
        })
        .collect();
    wait_all_ok(children);

    let all = entries(&root);
    let contested: Vec<_> = all
        .iter()
        .filter(|(t, _)| t.as_deref() == Some("contested"))
        .collect();
    assert_eq!(
        contested.len(),
        1,
        "exactly one entry must carry the tag: {all:?}"
    );
    let digests: Vec<String> = images.iter().map(|i| i.manifest.digest.clone()).collect();
    assert!(
        digests.contains(&contested[0].1),
        "contested names one of the images: {all:?}"
    );
    let tags = tag_map(&root);
    assert_eq!(tags.len(), 5, "{tags:?}");
    for (name, digest) in names.iter().zip(&digests) {
        assert_eq!(&tags[*name], digest, "{name} still names its image");
    }
    ok(&["fsck", &lay]);
    ok(&["inspect", &format!("{lay}:contested")]);
}

#[test]
fn gc_beside_taggers_removes_only_garbage() {
    let dir = tempdir();
    let root = dir.path().join("lay");
    let layout = strata::Layout::init(&root).expect("init");
    let lay = s(&root).to_owned();

    // Kept images, each with a permanent tag (the taggers only add and remove other tags).
    let kept: Vec<Image> = (0..4)
        .map(|i| {
            let image = write_image(
                &layout,
                &[&format!("keep-{i}-a"), &format!("keep-{i}-b")],
                "amd64",
            );
            add_entry(&layout, &image.manifest, Some(&format!("keep-{i}")));
            image
        })
        .collect();
    // An untagged entry is reachable too, and so is a referrer of a kept image.
    let untagged = write_image(&layout, &["untagged"], "amd64");
    add_entry(&layout, &untagged.manifest, None);
    let referrer = write_referrer(&layout, &kept[0].manifest, "signature of keep-0");
    // An image whose only tag is removed while others tag it by digest and gc runs: whichever
    // wins, what index.json ends up naming must be complete.
    let doomed = write_image(&layout, &["doomed"], "amd64");
    add_entry(&layout, &doomed.manifest, Some("doomed"));

    let reachable: BTreeSet<String> = kept
        .iter()
        .chain([&untagged, &referrer])
        .flat_map(Image::blobs)
        .map(|d| d.to_string())
        .collect();
    let mut garbage = BTreeSet::new();

    let mut expected_extra: BTreeSet<String> = BTreeSet::new();
    for round in 0..3 {
        // Fresh garbage for this round's gcs: an untagged image and a loose blob.
        let junk = write_image(&layout, &[&format!("junk-{round}")], "arm64");
        garbage.extend(junk.blobs().iter().map(ToString::to_string));
        let loose = layout
            .put_blob(format!("loose blob {round}").as_bytes())
            .expect("put_blob");
        garbage.insert(loose.digest.to_string());
        for g in &garbage {
            assert!(
                !reachable.contains(g),
                "fixture: {g} is both garbage and reachable"
            );
        }

        let mut children = Vec::new();
        let mut gcs = Vec::new();
        let mut maybes = Vec::new();
        for j in 0..8 {
            for (k, _) in kept.iter().enumerate() {
                let tag = format!("extra-{k}-{round}-{j}");
                children.push(spawn(&args(&["tag", &format!("{lay}:keep-{k}"), &tag])));
                expected_extra.insert(tag);
            }
            if j % 3 == 0 {
                gcs.push(spawn(&args(&["gc", &lay])));
            }
            if j % 4 == 0 {
                children.push(spawn(&args(&["fsck", &lay])));
            }
        }
        // Untag what the previous round added (those tags exist before this round starts).
        if round > 0 {
            for k in 0..kept.len() {
                for j in 0..8 {
                    let tag = format!("extra-{k}-{}-{j}", round - 1);
                    children.push(spawn(&args(&["untag", &format!("{lay}:{tag}")])));
                    expected_extra.remove(&tag);
                }
            }
        }
        if round == 1 {
            maybes.push(spawn(&args(&["untag", &format!("{lay}:doomed")])));
            for j in 0..4 {
                maybes.push(spawn(&args(&[
                    "tag",
                    &format!("{lay}@{}", doomed.manifest.digest),
                    &format!("doomed-{j}"),
                ])));
            }
        }
        wait_all_ok(children);
        wait_all_ok(gcs);
        for (what, child) in maybes {
            let (code, stderr) = finish(&what, child);
            assert!(
                code == 0 || what.contains("@"),
                "strata {what} exited {code}: {stderr}"
            );
        }

        // Every gc started after this round's garbage was written, so none of it is left;
        // nothing reachable may be gone.
        let stored = stored_blobs(&root);
        for g in &garbage {
            assert!(
                !stored.contains(g),
                "round {round}: garbage blob {g} survived gc"
            );
        }
        for d in &reachable {
            assert!(
                stored.contains(d),
                "round {round}: reachable blob {d} was removed"
            );
        }
        // Whether the doomed image survived depends on who won; if index.json names it, it
        // must be whole (fsck), and a final gc removes it otherwise.
        let doomed_named = entries(&root)
            .iter()
            .any(|(_, d)| *d == doomed.manifest.digest);
        ok(&["gc", &lay]);
        let stored = stored_blobs(&root);
        for d in doomed.blobs() {
            assert_eq!(
                stored.contains(&d.to_string()),
                doomed_named,
                "round {round}: doomed blob {d}"
            );
        }
        let report = fsck_json(&root);
        assert_eq!(
            report["unreferenced"],
            serde_json::json!([]),
            "round {round}: {report}"
        );
    }

    let tags = tag_map(&root);
    for k in 0..kept.len() {
        assert_eq!(
            tags[&format!("keep-{k}")],
            kept[k].manifest.digest,
            "keep-{k}"
        );
    }
    let extra: BTreeSet<String> = tags
        .keys()
        .filter(|t| t.starts_with("extra-"))
        .cloned()
        .collect();
    assert_eq!(
        extra, expected_extra,
        "the extra tags left are exactly the last round's"
    );
    assert!(
        entries(&root)
            .iter()
            .any(|(t, d)| t.is_none() && *d == untagged.manifest.digest),
        "the untagged entry stays"
    );
    fsck_json(&root);
}
