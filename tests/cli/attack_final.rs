//! The last attack's findings on hostile layers and images: cat's quick read, name limits
//! add-layer and fsck must share with unpack, and images unpack must not trip on.

use std::path::Path;

use crate::util::*;

/// `len` bytes no compressor shrinks (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `dir/L:big`, built from `dir/t` holding 256 KiB of noise: too big for the small file
/// systems the full-disk tests mount.
fn image_of_noise(dir: &Path) -> String {
    let tree = dir.join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("noise"), &noise(256 << 10));
    let image = format!("{}:big", s(&dir.join("L")));
    ok(&["build", s(&tree), &image]);
    image
}

/// A layout `lay` whose image `t` is `layers` (plain tars) in order; returns `lay`.
fn layered(dir: &Path, layers: &[Vec<u8>]) -> String {
    std::fs::create_dir_all(dir).unwrap();
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
    low.file("z", b"1", 0o644)
        .file("etc/passwd", b"OLD\n", 0o644);
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

/// A tar holding `entries` (name, symlink target) built with GNU long names and links.
fn tar_of_symlinks(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, target) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

/// Names no file system holds (a component over 255 bytes, a symlink target over 4095)
/// were accepted by add-layer and called sound by fsck, and only unpack failed, late, with
/// "File name too long": every reader now refuses them alike, naming the limit.
#[test]
fn names_no_file_system_holds_are_refused_by_every_reader() {
    let dir = tempdir();
    let long_name = "n".repeat(300);
    let long_target = "t/".repeat(2500);
    for (case, layer) in [
        ("name", {
            let mut t = TarBuilder::new();
            t.file(&long_name, b"1", 0o644);
            t.finish()
        }),
        ("target", tar_of_symlinks(&[("s", &long_target)])),
    ] {
        let base = dir.path().join(case);
        std::fs::create_dir(&base).unwrap();
        let image = format!("{}:base", s(&base.join("new")));
        ok(&["new", &image]);
        let file = base.join("layer.tar");
        write(&file, &layer);
        let before = snapshot(&base.join("new"));
        let err = fails(&["add-layer", &image, s(&file)], 1);
        assert!(err.contains("at most"), "{case}: {err}");
        assert_eq!(
            before,
            snapshot(&base.join("new")),
            "{case}: layout changed"
        );

        // Stored unread (as import stores a docker-archive's layers): fsck and unpack agree.
        let lay = layered(&base, std::slice::from_ref(&layer));
        let r = run(&["fsck", &lay]);
        assert_eq!(r.code, 1, "{case}: fsck called it sound: {}", r.stdout);
        assert!(
            r.stdout.contains("at most") || r.stderr.contains("at most"),
            "{case}: {r:?}",
            r = (r.stdout, r.stderr)
        );
        let err = fails(&["unpack", &format!("{lay}:t"), s(&base.join("bundle"))], 1);
        assert!(err.contains("at most"), "{case}: {err}");
        let err = fails(&["files", &format!("{lay}:t")], 1);
        assert!(err.contains("at most"), "{case}: {err}");
    }
    // A whiteout's own name may be longer: only the name it points at must fit.
    let dir2 = dir.path().join("wh");
    std::fs::create_dir(&dir2).unwrap();
    let name = "w".repeat(255);
    let mut low = TarBuilder::new();
    low.file(&name, b"1", 0o644);
    let mut top = TarBuilder::new();
    top.file(&format!(".wh.{name}"), b"", 0o644);
    let lay = layered(&dir2, &[low.finish(), top.finish()]);
    ok(&["fsck", &lay]);
    ok(&["unpack", &format!("{lay}:t"), s(&dir2.join("bundle"))]);
    assert!(!dir2.join("bundle/rootfs").join(&name).exists());
}

/// An image whose /etc/passwd is a FIFO (or /etc/group a directory) has no users to read:
/// unpack failed on it ("not a regular file") where runtime-config took it as absent.
#[test]
fn a_passwd_that_is_no_regular_file_is_read_as_absent_by_unpack_too() {
    let dir = tempdir();
    let mut t = TarBuilder::new();
    t.dir("etc/", 0o755)
        .device("etc/passwd", tar::EntryType::Fifo, 0, 0)
        .dir("etc/group/", 0o755);
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    ok(&["unpack", &image, s(&dir.path().join("bundle"))]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bundle/config.json")).unwrap())
            .unwrap();
    let from_image: serde_json::Value =
        serde_json::from_str(&ok(&["runtime-config", &image, "-"])).unwrap();
    assert_eq!(config["process"]["user"], from_image["process"]["user"]);
    assert_eq!(config["process"]["user"]["uid"], 0, "{config}");
}

/// One title inside another (`x`, `x/y`) is refused as two equal titles are: the push
/// succeeded and the pull failed.
#[test]
fn artifact_titles_one_inside_another_are_refused() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("x")).unwrap();
    write(&dir.path().join("x/y"), b"c\n");
    write(&dir.path().join("x-y"), b"1\n");
    let push = |files: &[&str]| {
        let mut args = vec![
            "artifact",
            "push",
            "--artifact-type",
            "application/x.t",
            "AL:t",
        ];
        args.extend_from_slice(files);
        strata(&args).current_dir(dir.path()).output().unwrap()
    };
    for files in [&["x", "x/y"][..], &["x/y", "x"][..]] {
        let out = push(files);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{files:?}: {err}");
        assert!(err.contains("is inside"), "{err}");
    }
    assert!(
        !dir.path().join("AL").exists(),
        "a refused push made the layout"
    );
    let out = push(&["x", "x-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// repack of a bundle whose unpack was killed said only that strata.json was missing or
/// broken: it says the unpack did not finish, as a second unpack does.
#[test]
fn repack_of_a_bundle_whose_unpack_was_killed_says_so() {
    let dir = tempdir();
    let (_, bundle) = crate::crash_matrix::killed_unpack(dir.path());
    let before = snapshot(dir.path().join("src").as_path());
    let err = fails(&["repack", s(&bundle)], 1);
    assert!(
        err.contains("the bundle holds an unpack that did not finish"),
        "{err}"
    );
    assert_eq!(before, snapshot(dir.path().join("src").as_path()));
}

/// An empty file is refused as a layer, and so is one that decompresses to nothing.
#[test]
fn a_compressed_layer_of_nothing_is_refused_as_an_empty_file_is() {
    let dir = tempdir();
    let image = format!("{}:b", s(&dir.path().join("Q")));
    ok(&["new", &image]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, b"").unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&b""[..], 3).unwrap();
    for (name, bytes) in [("e.gz", gz), ("e.zst", zst)] {
        let file = dir.path().join(name);
        write(&file, &bytes);
        let before = snapshot(&dir.path().join("Q"));
        let err = fails(&["add-layer", &image, s(&file)], 1);
        assert!(err.contains("to nothing"), "{name}: {err}");
        assert_eq!(before, snapshot(&dir.path().join("Q")));
    }
}

/// A full disk under the archive is the archive's fault: it named the source blob and the
/// hidden temp file beside the archive.
#[test]
fn a_full_disk_under_an_export_names_the_archive() {
    let dir = tempdir();
    let image = image_of_noise(dir.path());
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    for (format, name) in [("oci", "x.tar"), ("docker", "y.tar"), ("rootfs", "z.tar")] {
        let archive = small.join(name);
        // A 64 KiB file system of our own, in a mount namespace (root or not).
        let script = format!(
            "mount -t tmpfs -o size=64k tmpfs {small} && exec {bin} export {image} --format {format} -o {archive}",
            small = s(&small),
            bin = strata_bin(),
            archive = s(&archive),
        );
        let out = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {err}");
        assert!(
            err.contains(&format!("{}: no space left", s(&archive))),
            "{format}: {err}"
        );
        assert!(
            !err.contains(".tmp") && !err.contains("blobs/"),
            "{format}: {err}"
        );
    }
}

/// A full disk under a layout is said of the layout (or of the layout being created), in
/// words: writers named `.strata-tmp/blob-PID.X`, staging directories, or a creation's
/// hidden temp directory, with tempfile's "at path" and the C library's error number.
#[test]
fn a_full_disk_under_a_layout_names_the_layout() {
    let dir = tempdir();
    let image = image_of_noise(dir.path());
    let tree = dir.path().join("t");
    let archive = dir.path().join("big.tar");
    ok(&["export", &image, "-o", s(&archive)]);
    let layer = dir.path().join("layer.tar");
    std::fs::copy(&archive, &layer).unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let full = s(&small.join("full")).to_owned();
    let bin = strata_bin();
    let script = format!(
        "set -e; mount -t tmpfs -o size=192k tmpfs {small}; {bin} -q new {full}:x; \
         head -c 150000 /dev/zero > {small}/fill; \
         for c in 'build {tree} {full}:y' 'copy {image} {full}:big' 'import {archive} {full}' \
                  'add-layer {full}:x {layer}'; do \
           {bin} $c 2>&1 && echo UNEXPECTED-SUCCESS || true; done; \
         rm {small}/fill; head -c 190000 /dev/zero > {small}/fill || true; \
         {bin} new {small}/other:x 2>&1 || true; cd {small}; {bin} init rel 2>&1 || true; \
         ls -A {full}",
        small = s(&small),
        tree = s(&tree),
        archive = s(&archive),
        layer = s(&layer),
    );
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = said.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 6, "{said}");
    // Named as given, relative: tempfile's absolute temp paths did not match the creation's.
    assert_eq!(
        errors[5], "strata: error: rel: cannot be created: no space left on the device",
        "{said}"
    );
    for line in &errors[..4] {
        assert_eq!(
            *line,
            format!("strata: error: {full}: writing into the layout: no space left on the device"),
            "{said}"
        );
    }
    assert_eq!(
        errors[4],
        format!(
            "strata: error: {}/other: cannot be created: no space left on the device",
            s(&small)
        ),
        "{said}"
    );
    assert!(
        !said.contains("UNEXPECTED-SUCCESS") && !said.contains(".strata-tmp"),
        "{said}"
    );
}

/// `archive` with its member `name` replaced by `bytes`.
fn with_member(archive: &[u8], name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut header = entry.header().clone();
        if path == Path::new(name) {
            header.set_size(bytes.len() as u64);
            header.set_cksum();
            out.append(&header, bytes).unwrap();
        } else {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.append(&header, &data[..]).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// A docker manifest.json that lists one image twice, or one tag twice, imports one image
/// under one tag: it said "imported 2 images" and listed the same one twice.
#[test]
fn an_image_or_tag_listed_twice_in_a_docker_archive_is_imported_once() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let archive = dir.path().join("d.tar");
    ok(&["export", &image, "--format", "docker", "-o", s(&archive)]);
    let bytes = std::fs::read(&archive).unwrap();
    let manifest: serde_json::Value = {
        let mut reader = tar::Archive::new(&bytes[..]);
        let mut found = None;
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap() == Path::new("manifest.json") {
                found = Some(serde_json::from_reader(&mut entry).unwrap());
            }
        }
        found.unwrap()
    };
    let mut twice = manifest.clone();
    twice.as_array_mut().unwrap().push(manifest[0].clone());
    let mut two_tags = manifest.clone();
    two_tags[0]["RepoTags"] = serde_json::json!(["img:a", "img:a"]);
    let mut untagged_too = twice.clone();
    untagged_too[1]["RepoTags"] = serde_json::json!([]);
    for (case, doc) in [
        ("twice", twice.clone()),
        ("two-tags", two_tags),
        ("untagged-too", untagged_too),
    ] {
        let file = dir.path().join(format!("{case}.tar"));
        write(
            &file,
            &with_member(&bytes, "manifest.json", doc.to_string().as_bytes()),
        );
        let dest = dir.path().join(case);
        let report = json(&["import", s(&file), s(&dest), "--json"]);
        assert_eq!(
            report["images"].as_array().unwrap().len(),
            1,
            "{case}: {report}"
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"].as_array().unwrap().len(),
            1,
            "{case}: {index}"
        );
    }
    // One image under two tags is one image imported.
    let mut renamed = twice;
    renamed[0]["RepoTags"] = serde_json::json!(["x:1"]);
    renamed[1]["RepoTags"] = serde_json::json!(["x:2"]);
    let file = dir.path().join("renamed.tar");
    write(
        &file,
        &with_member(&bytes, "manifest.json", renamed.to_string().as_bytes()),
    );
    let r = run(&["import", s(&file), s(&dir.path().join("renamed"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("imported 1 image "), "{}", r.stderr);
}

/// A symlink loop met while placing an entry is said of the entry, as unpack says it:
/// add-layer and fsck named only the looping path.
#[test]
fn a_symlink_loop_is_said_of_the_entry_that_met_it() {
    let dir = tempdir();
    let mut low = TarBuilder::new();
    low.file("a", b"1", 0o644).symlink("s", "s");
    let low = low.finish();
    let mut top = TarBuilder::new();
    top.hardlink("y", "s/a");
    let top = top.finish();
    let below = layered(&dir.path().join("below"), std::slice::from_ref(&low));
    let file = dir.path().join("top.tar");
    write(&file, &top);
    let err = fails(&["add-layer", &format!("{below}:t"), s(&file)], 1);
    assert!(
        err.contains("entry \"y\"") && err.contains("symbolic links"),
        "{err}"
    );
    let lay = layered(&dir.path().join("both"), &[low, top]);
    let r = run(&["fsck", &lay]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("entry \"y\""), "{}", r.stdout);
}

/// A bad descriptor in an archive's index.json is said of the archive, and of where it is.
#[test]
fn a_negative_size_in_an_archive_names_the_archive() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let archive = dir.path().join("o.tar");
    ok(&["export", &image, "-o", s(&archive)]);
    let bytes = std::fs::read(&archive).unwrap();
    let mut index: serde_json::Value = {
        let mut reader = tar::Archive::new(&bytes[..]);
        let entry = reader
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap() == Path::new("index.json"))
            .unwrap();
        serde_json::from_reader(entry).unwrap()
    };
    index["manifests"][0]["size"] = serde_json::json!(-1);
    let bad = dir.path().join("neg.tar");
    write(
        &bad,
        &with_member(&bytes, "index.json", index.to_string().as_bytes()),
    );
    let err = fails(&["import", s(&bad), s(&dir.path().join("dest"))], 1);
    assert!(
        err.starts_with(&format!(
            "strata: error: {}: a descriptor in index.json",
            s(&bad)
        )),
        "{err}"
    );
    assert!(err.contains("negative size"), "{err}");
}

/// A file written through a symlinked directory that the same or a later layer replaces
/// or whites out is not in the image: cat's quick read of the top layers printed it.
#[test]
fn cat_agrees_with_files_about_paths_through_replaced_aliases() {
    let dir = tempdir();
    let mut low = TarBuilder::new();
    low.dir("b/", 0o755).symlink("a", "b");
    let low = low.finish();
    let mut replaced = TarBuilder::new();
    replaced
        .file("a/f", b"NEW", 0o644)
        .file("b", b"now a file", 0o644);
    let mut whited = TarBuilder::new();
    whited.file("a/f", b"NEW", 0o644);
    let mut gone = TarBuilder::new();
    gone.file(".wh.b", b"", 0o644);
    for (case, layers) in [
        ("replaced", vec![low.clone(), replaced.finish()]),
        ("whited", vec![low.clone(), whited.finish(), gone.finish()]),
    ] {
        let lay = layered(&dir.path().join(case), &layers);
        let image = format!("{lay}:t");
        let listed = run(&["files", &image, "/a/f"]);
        let shown = run(&["cat", &image, "/a/f"]);
        assert_eq!(listed.code, 1, "{case}: files: {}", listed.stdout);
        assert_eq!(shown.code, 1, "{case}: cat printed {:?}", shown.stdout);
        assert_eq!(shown.stdout, "", "{case}");
    }
}

/// A thread count past what any machine runs is a wrong value (exit 2): near 2^64 it
/// overflowed the work queue's size and panicked.
#[test]
fn huge_thread_counts_are_refused_not_panicked_on() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    for big in ["18446744073709551615", "9223372036854775807", "1025"] {
        let err = fails(&["flatten", &image, "--tag", "f", "--threads", big], 2);
        assert!(err.contains("1 to 1024"), "{err}");
        let r = run_with_env(
            &["flatten", &image, "--tag", "f"],
            &[("STRATA_THREADS", big)],
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("STRATA_THREADS"), "{}", r.stderr);
    }
    ok(&["flatten", &image, "--tag", "f", "--threads", "1024"]);
}

/// repack's warning for a tag moved off another image said that image was "untagged now",
/// though other tags may name it.
#[test]
fn repack_does_not_call_an_image_other_tags_name_untagged() {
    let dir = tempdir();
    let lay = s(&dir.path().join("L")).to_owned();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    ok(&["new", &format!("{lay}:base")]);
    ok(&["build", s(&tree), &format!("{lay}:demo")]);
    let bundle = dir.path().join("b");
    ok(&["unpack", "--rootless", &format!("{lay}:base"), s(&bundle)]);
    write(&bundle.join("rootfs/n"), b"n\n");
    ok(&["tag", &format!("{lay}:demo"), "rt"]);
    let r = run(&["repack", s(&bundle), "--tag", "rt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("moved tag rt from"), "{}", r.stderr);
    assert!(!r.stderr.contains("untagged"), "{}", r.stderr);
    assert!(ok(&["ls", &lay]).contains("demo"));
}
