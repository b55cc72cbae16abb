//! Completions that know the layout: the dynamic completer driven the way bash's
//! registration script drives it, and the static scripts (nushell among them).

use std::path::Path;

use strata::spec::media_type;

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

// ---------------------------------------------------------------------------------------
// add-layer with compressed layer files
// ---------------------------------------------------------------------------------------

use crate::build::{at, blob_path, layers, raw_config, strata_unpacked, Refusals};

/// A layer tar with a directory, a file in it and a symlink.
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "etc/", &[][..]).unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o640);
    file.set_size(6);
    b.append_data(&mut file, "etc/hello", &b"hello\n"[..])
        .unwrap();
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    b.append_link(&mut link, "etc/hi", "hello").unwrap();
    b.into_inner().unwrap()
}

/// gzip at level 9: not strata's level, so a recompressed blob would differ.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_layer_stores_gzip_and_zstd_layers_as_given() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "l", &["t"]);
    let layout = layout.root().to_owned();
    let tar = layer_tar();
    // Two gzip members, as pigz and BGZF write them.
    let (front, back) = tar.split_at(700);
    let mut members = gzip(front);
    members.extend(gzip(back));
    let cases = [
        ("layer.tar.gz", gzip(&tar), media_type::LAYER_TAR_GZIP),
        ("members.tgz", members, media_type::LAYER_TAR_GZIP),
        (
            "layer.tar.zst",
            zstd::encode_all(&tar[..], 19).unwrap(),
            media_type::LAYER_TAR_ZSTD,
        ),
    ];
    for (i, (name, bytes, mt)) in cases.iter().enumerate() {
        let path = dir.path().join(name);
        write(&path, bytes);
        ok(&["add-layer", &at(&layout, "t"), s(&path)]);
        let l = layers(&layout, "t");
        let added = &l[l.len() - 1];
        assert_eq!(l.len(), 2 + i, "{name}");
        assert_eq!(added["mediaType"], *mt, "{name}");
        assert_eq!(added["digest"], sha256(bytes).to_string(), "{name}");
        assert_eq!(added["diffId"], sha256(&tar).to_string(), "{name}");
        let stored = std::fs::read(blob_path(&layout, added["digest"].as_str().unwrap()));
        assert_eq!(&stored.unwrap(), bytes, "{name}: not stored byte for byte");
        let diff_ids = &raw_config(&layout, "t")["rootfs"]["diff_ids"];
        assert_eq!(diff_ids[1 + i], sha256(&tar).to_string(), "{name}");
        let fsck = run(&["fsck", s(&layout)]);
        assert_eq!(fsck.code, 0, "{name}: {}{}", fsck.stdout, fsck.stderr);
        let tree = strata_unpacked(&at(&layout, "t"), &dir.path().join(format!("b{i}")));
        assert_eq!(tree[&b"etc/hello"[..]]["mode"], "0640", "{name}");
        assert_eq!(tree[&b"etc/hi"[..]]["target"], "\"hello\"", "{name}");
    }
}

#[test]
fn add_layer_refuses_bad_compressed_layers_leaving_the_layout_unchanged() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "l", &["t"]);
    let layout = layout.root().to_owned();
    let tar = layer_tar();
    let good = gzip(&tar);
    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    let mut bad_crc = good.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 1;
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"trailing junk");
    let zstd_truncated = {
        let z = zstd::encode_all(&tar[..], 3).unwrap();
        z[..z.len() - 4].to_vec()
    };
    let mut escape = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    h.set_mode(0o644);
    // set_path refuses `..`: write the name into the header as a hostile tool would.
    h.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"../outside");
    h.set_cksum();
    escape.append(&h, &b"x"[..]).unwrap();
    let escape = zstd::encode_all(&escape.into_inner().unwrap()[..], 3).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupt.tar.gz", corrupt, "corrupt.tar.gz"),
        ("bad-crc.tar.gz", bad_crc, "bad-crc.tar.gz"),
        (
            "truncated.tar.gz",
            good[..good.len() - 10].to_vec(),
            "truncated",
        ),
        ("trailing.tar.gz", trailing, "decompressing it"),
        ("text.gz", gzip(b"not a tar at all\n"), "text.gz"),
        ("truncated.tar.zst", zstd_truncated, "truncated.tar.zst"),
        ("escape.tar.zst", escape, "outside"),
    ];
    let mut refusals = Refusals::new(&layout);
    for (name, bytes, needle) in cases {
        let path = dir.path().join(name);
        write(&path, &bytes);
        let r = run(&["add-layer", &at(&layout, "t"), s(&path)]);
        refusals.check(&format!("add-layer {name}"), &r, &[name, needle]);
    }
    // A compressed file is stored as given: asking for another compression is a usage error.
    let gz = dir.path().join("good.tar.gz");
    write(&gz, &good);
    let r = run(&["add-layer", &at(&layout, "t"), s(&gz), "--compress", "zstd"]);
    refusals.check_usage(
        "add-layer --compress zstd of a gzip file",
        &r,
        &["good.tar.gz"],
    );
    refusals.finish();
    // --compress naming the file's own compression is no conflict.
    ok(&["add-layer", &at(&layout, "t"), s(&gz), "--compress", "gzip"]);
    assert_eq!(layers(&layout, "t")[1]["digest"], sha256(&good).to_string());
}

// ---------------------------------------------------------------------------------------
// Hints name only flags the command has
// ---------------------------------------------------------------------------------------

/// The long flags `strata COMMAND --help` lists (clap's tree as the user sees it).
fn flags_of(command: &[&str]) -> Vec<String> {
    let mut args = command.to_vec();
    args.push("--help");
    ok(&args)
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            // `-o, --output`: the short form first.
            let line = match line.as_bytes() {
                [b'-', short, b',', b' ', ..] if *short != b'-' => &line[4..],
                _ => line,
            };
            let flag = line.strip_prefix("--")?;
            let end = flag
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(flag.len());
            Some(format!("--{}", &flag[..end]))
        })
        .collect()
}

/// Every `--flag` a message names, as written.
fn flags_named(message: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        let flag = &rest[at + 2..];
        let end = flag
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(flag.len());
        if end > 0 {
            found.push(format!("--{}", &flag[..end]));
        }
        rest = &flag[end..];
    }
    found
}

/// Runs an error path of `command` and checks its message names no flag the command lacks.
fn assert_hints_are_its_own(command: &[&str], args: &[&str], cwd: &Path, needle: &str) {
    let own = flags_of(command);
    let mut all = command.to_vec();
    all.extend_from_slice(args);
    let out = strata(&all).current_dir(cwd).output().expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{all:?} succeeded");
    assert!(stderr.contains(needle), "{all:?}: {stderr}");
    for flag in flags_named(&stderr) {
        assert!(
            own.contains(&flag),
            "{all:?} names {flag}, which `strata {}` lacks: {stderr}",
            command.join(" ")
        );
    }
}

#[test]
fn no_tag_messages_name_only_flags_the_command_has() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    write(&dir.path().join("tree/f"), b"f");
    write(&dir.path().join("file"), b"payload");
    let cases: &[(&[&str], &[&str])] = &[
        (&["new"], &["lay"]),
        (&["build"], &["tree", "lay"]),
        (&["index", "create"], &["--manifest", "lay:app", "lay"]),
        (&["index", "add"], &["--manifest", "lay:app", "lay"]),
        (&["index", "remove"], &["--platform", "linux/amd64", "lay"]),
        (
            &["artifact", "push"],
            &["--artifact-type", "a/b", "lay", "file"],
        ),
        // These have --tag: their message may name it.
        (&["config"], &["lay", "--env", "A=1"]),
        (&["add-layer"], &["lay", "file"]),
    ];
    for (command, args) in cases {
        assert_hints_are_its_own(command, args, dir.path(), "names no tag");
    }
    assert!(flags_of(&["config"]).contains(&"--tag".to_owned()));
    assert!(!flags_of(&["new"]).contains(&"--tag".to_owned()));
}

#[test]
fn other_flag_hints_come_from_commands_that_have_the_flag() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app"]);
    layout_with_images(dir.path(), "lay2", &["x"]);
    assert_hints_are_its_own(&["copy"], &["lay:app", "lay2:x"], dir.path(), "--force");
    assert_hints_are_its_own(
        &["export"],
        &[
            "--format",
            "docker",
            "--all-platforms",
            "lay:app",
            "-o",
            "a.tar",
        ],
        dir.path(),
        "--all-platforms",
    );
    assert_hints_are_its_own(&["new"], &[":x"], dir.path(), "--layout");
}

/// `--subject :` and `--manifest :` name the layout of the REF already typed: their tags
/// complete from it (nothing was offered).
#[test]
fn an_empty_layout_part_completes_from_the_ref_already_typed() {
    let dir = tempdir();
    layout_with_images(dir.path(), "lay", &["app", "base"]);
    let got = candidates(
        dir.path(),
        &[
            "strata",
            "artifact",
            "push",
            "lay:sig",
            "f",
            "--subject",
            ":a",
        ],
        6,
    );
    assert_eq!(got, [":app"], "{got:?}");
    let got = candidates(
        dir.path(),
        &["strata", "index", "create", "lay:i", "--manifest", ":"],
        5,
    );
    assert_eq!(got, [":app", ":base"], "{got:?}");
}
