//! `convert --compress-level`: the level reaches the recompressed layers, the default stays
//! level 3, the output does not depend on the thread count, and a level the compression
//! does not take is a usage error that leaves the layout as it was.

use crate::util::*;

/// A one-layer gzip image of a tree large enough for the levels to differ.
fn image(dir: &std::path::Path) -> String {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("data")).unwrap();
    for i in 0..8u32 {
        let text: String = (0..20_000u32)
            .map(|j| format!("line {} of file {i}\n", j.wrapping_mul(2654435761) % 9973))
            .collect();
        std::fs::write(tree.join(format!("data/f{i}.txt")), text).unwrap();
    }
    let image = format!("{}:app", s(&dir.join("lay")));
    ok(&["build", s(&tree), &image]);
    image
}

fn layer_digests(reference: &str) -> Vec<String> {
    let manifest = json(&["inspect", reference, "--raw", "manifest"]);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn convert_compress_level_reaches_the_layers() {
    let dir = tempdir();
    let image = image(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let at = |t: &str| format!("{lay}:{t}");
    let convert = |threads: &str, extra: &[&str], tag: &str| {
        let mut args = vec!["--threads", threads, "-q", "convert", &image, "--tag", tag];
        args.extend_from_slice(extra);
        ok(&args);
        layer_digests(&at(tag))
    };
    let zstd_default = convert("2", &["--compress", "zstd"], "z");
    let zstd3 = convert("1", &["--compress", "zstd", "--compress-level", "3"], "z3");
    assert_eq!(zstd3, zstd_default, "level 3 is the default");
    let zstd1 = convert("1", &["--compress", "zstd", "--compress-level", "1"], "z1a");
    assert_ne!(zstd1, zstd_default, "--compress-level 1 changed nothing");
    assert_eq!(
        convert("3", &["--compress", "zstd", "--compress-level", "1"], "z1b"),
        zstd1,
        "the level's output depends on the thread count"
    );
    let zstd19 = convert(
        "2",
        &["--compress", "zstd", "--compress-level", "19"],
        "z19",
    );
    let size = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::metadata(format!("{lay}/blobs/sha256/{hex}"))
            .unwrap()
            .len()
    };
    assert!(
        size(&zstd19[0]) < size(&zstd1[0]),
        "level 19 ({}) is not smaller than level 1 ({})",
        size(&zstd19[0]),
        size(&zstd1[0])
    );
    let gzip_default = convert("2", &["--compress", "gzip"], "g");
    assert_eq!(
        gzip_default,
        layer_digests(&image),
        "build writes gzip level 3"
    );
    let gzip9 = convert("2", &["--compress", "gzip", "--compress-level", "9"], "g9");
    assert_eq!(gzip9, gzip_default, "a gzip layer is kept as it is");
    let from_zstd = |level: &str, tag: &str| {
        ok(&[
            "-q",
            "convert",
            &at("z1a"),
            "--compress",
            "gzip",
            "--compress-level",
            level,
            "--tag",
            tag,
        ]);
        layer_digests(&at(tag))
    };
    assert_eq!(from_zstd("3", "back3"), gzip_default);
    assert_ne!(from_zstd("9", "back9"), gzip_default);
    // Every layer written decompresses to its diff_id.
    ok(&["fsck", &lay]);
}

#[test]
fn convert_refuses_a_level_the_compression_does_not_take() {
    let dir = tempdir();
    let image = image(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let before = snapshot(std::path::Path::new(&lay));
    for (extra, says) in [
        (
            &["--compress", "zstd", "--compress-level", "20"][..],
            "1 to 19",
        ),
        (
            &["--compress", "zstd", "--compress-level", "0"][..],
            "1 to 19",
        ),
        (
            &["--compress", "gzip", "--compress-level", "10"][..],
            "0 to 9",
        ),
        (&["--compress", "none", "--compress-level", "1"][..], "none"),
        (&["--compress-level", "1"][..], "--compress"),
        (&["--compress", "zstd", "--compress-level", "-1"][..], "-1"),
    ] {
        let mut args = vec!["convert", &image, "--tag", "x"];
        args.extend_from_slice(extra);
        let err = fails(&args, 2);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(
            snapshot(std::path::Path::new(&lay)) == before,
            "{extra:?} changed the layout"
        );
    }
}
