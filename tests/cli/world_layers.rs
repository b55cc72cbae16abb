//! Layers written by the tar writers in the wild, unpacked by strata and compared entry by
//! entry (type, mode, owner, size, content hash, link target, every xattr, mtime to the
//! second) with what GNU tar extracts from the same tar as root
//! (`tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf`).
//!
//! One source tree is archived by each writer with what that writer can store:
//! - GNU tar `--format=gnu --sparse`: long names (`././@LongLink`), hardlinks, old GNU
//!   sparse headers (`S`, with extension blocks for the file of more than 4 regions); the
//!   format has no xattrs.
//! - GNU tar `--format=posix --xattrs --acls --sparse --sparse-version=0.0/0.1/1.0`: PAX
//!   names, sparse in all three PAX forms, xattrs as `SCHILY.xattr.*`, ACLs both as
//!   `SCHILY.acl.*` text and as `SCHILY.xattr.system.posix_acl_*`.
//! - bsdtar (restricted pax) `--xattrs --acls --read-sparse`: sparse 1.0, xattrs as both
//!   `LIBARCHIVE.xattr.*` and `SCHILY.xattr.*`, ACLs as `SCHILY.acl.*` text only
//!   (`user:NAME:perms:ID`).
//! - Python's tarfile, PAX and GNU formats: long names, hardlinks; tarfile reads no xattrs
//!   and writes no sparse members, so the PAX script adds each file's xattrs as
//!   `SCHILY.xattr.*` records itself (binary values go out with `hdrcharset=BINARY`).
//! - busybox tar: long names (GNU long name headers) and hardlinks; no xattrs, no sparse.
//!
//! Every writer and GNU tar are peers: missing, they skip the test, or fail it under
//! STRATA_REQUIRE_PEERS=1.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::build::at;
use crate::util::{ok, peer, peer_ok, s, scan, show, tempdir, Tree};

/// A directory name long enough that the paths under it need a long-name extension.
const LONG: &str =
    "a-directory-name-that-is-long-enough-to-need-an-extension-header-in-every-tar-format-there-is";

/// Runs `program` with `args`, asserting success.
fn sh(program: &str, args: &[&str]) {
    peer_ok(program, args);
}

/// Writes the source tree every writer archives. With `rich`, it also has what only some
/// writers store: POSIX ACLs (access and default), a file capability and binary xattrs.
fn source_tree(root: &Path, rich: bool) {
    let p = |rel: &str| root.join(rel);
    std::fs::create_dir_all(p(&format!("{LONG}/sub"))).unwrap();
    std::fs::write(p("plain"), b"plain text\n").unwrap();
    std::fs::write(
        p(&format!(
            "{LONG}/sub/file-with-a-long-name-as-well-{}",
            "x".repeat(40)
        )),
        b"deep\n",
    )
    .unwrap();
    std::fs::hard_link(p("plain"), p(&format!("{LONG}/hardlink-to-plain"))).unwrap();
    std::os::unix::fs::symlink("../plain", p(&format!("{LONG}/symlink"))).unwrap();
    std::fs::write(p("owned"), b"owned by someone\n").unwrap();
    sh("chown", &["1234:5678", s(&p("owned"))]);
    sh("chmod", &["4750", s(&p("owned"))]);
    // Sparse: one byte in the middle of 10 MiB, and a file of 6 regions (more than the
    // 4 an old GNU sparse header holds) ending in a hole.
    let sparse = std::fs::File::create(p("sparse")).unwrap();
    sparse.set_len(10 << 20).unwrap();
    sparse.write_all_at(b"x", 5 << 20).unwrap();
    let many = std::fs::File::create(p("many-regions")).unwrap();
    for i in 0..6u64 {
        many.write_all_at(format!("region {i}").as_bytes(), i << 20)
            .unwrap();
    }
    many.set_len(7 << 20).unwrap();
    drop((sparse, many));
    if rich {
        std::fs::write(p("acl-file"), b"acl\n").unwrap();
        // Ids with no name on the host, so GNU tar writes them as numbers.
        sh(
            "setfacl",
            &["-m", "u:4242:rwx,g:4343:r-x", s(&p("acl-file"))],
        );
        std::fs::create_dir(p("acl-dir")).unwrap();
        sh("setfacl", &["-m", "u:4242:rx", s(&p("acl-dir"))]);
        sh(
            "setfacl",
            &["-d", "-m", "u:4242:rwx,g::r-x", s(&p("acl-dir"))],
        );
        std::fs::write(p("ping"), b"\x7fELF pretend\n").unwrap();
        sh("setcap", &["cap_net_raw+ep", s(&p("ping"))]);
        std::fs::write(p("xattrs"), b"xattrs\n").unwrap();
        sh(
            "setfattr",
            &["-n", "user.bin", "-v", "0x00ff100a0d3d20", s(&p("xattrs"))],
        );
        sh(
            "setfattr",
            &["-n", "user.text", "-v", "hello", s(&p("xattrs"))],
        );
    }
    // Before the SOURCE_DATE_EPOCH the tests run strata with, so repack keeps them.
    sh(
        "find",
        &[
            s(root),
            "-mindepth",
            "1",
            "-exec",
            "touch",
            "-h",
            "-d",
            "@1600000000",
            "{}",
            "+",
        ],
    );
}

/// The Python script that writes `argv[3]` from the tree `argv[2]` in tarfile's format
/// `argv[1]` (`pax` or `gnu`); for PAX, each entry's xattrs become SCHILY.xattr records.
const PYTHON_WRITER: &str = r#"
import os, sys, tarfile
fmt = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT}[sys.argv[1]]
src = sys.argv[2]
with tarfile.open(sys.argv[3], "w", format=fmt) as out:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in [""] + sorted(dirnames + filenames) if dirpath == src else sorted(dirnames + filenames):
            path = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(path, src)
            info = out.gettarinfo(path, arcname="./" if rel == "." else "./" + rel)
            if fmt == tarfile.PAX_FORMAT and not os.path.islink(path):
                for key in os.listxattr(path, follow_symlinks=False):
                    value = os.getxattr(path, key, follow_symlinks=False)
                    info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
            if info.isreg():
                with open(path, "rb") as f:
                    out.addfile(info, f)
            else:
                out.addfile(info)
"#;

/// How each writer archives `src` into `out`.
fn write_tar(writer: &str, src: &Path, out: &Path) {
    let (src, out) = (s(src), s(out));
    match writer {
        "gnu" => sh(
            "tar",
            &["--format=gnu", "--sparse", "-cf", out, "-C", src, "."],
        ),
        "posix-0.0" | "posix-0.1" | "posix-1.0" => {
            let version = format!("--sparse-version={}", &writer[6..]);
            sh(
                "tar",
                &[
                    "--format=posix",
                    "--xattrs",
                    "--xattrs-include=*",
                    "--acls",
                    "--sparse",
                    &version,
                    "-cf",
                    out,
                    "-C",
                    src,
                    ".",
                ],
            )
        }
        // ACLs as SCHILY.acl.* text only, ids as numbers (the ids have no names here).
        "posix-acls" => sh(
            "tar",
            &["--format=posix", "--acls", "-cf", out, "-C", src, "."],
        ),
        "bsdtar" => sh(
            "bsdtar",
            &[
                "--xattrs",
                "--acls",
                "--read-sparse",
                "-cf",
                out,
                "-C",
                src,
                ".",
            ],
        ),
        "python-pax" | "python-gnu" => {
            sh("python3", &["-c", PYTHON_WRITER, &writer[7..], src, out])
        }
        "busybox" => sh("busybox", &["tar", "-cf", out, "-C", src, "."]),
        other => panic!("no writer {other}"),
    }
}

/// The peer tools `writer` needs.
fn tools(writer: &str, rich: bool) -> Vec<&'static str> {
    let mut t = vec!["tar"];
    t.push(match writer {
        "bsdtar" => "bsdtar",
        "busybox" => "busybox",
        w if w.starts_with("python") => "python3",
        _ => "tar",
    });
    if rich {
        t.extend(["setfacl", "setcap", "setfattr"]);
    }
    t
}

/// Differences between the two trees, one line each.
fn differences(strata: &Tree, reference: &Tree) -> Vec<String> {
    let none = String::from("-");
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&Vec<u8>> =
        strata.keys().chain(reference.keys()).collect();
    for key in keys {
        let (Some(a), Some(b)) = (strata.get(key), reference.get(key)) else {
            let who = if strata.contains_key(key) {
                "strata"
            } else {
                "GNU tar"
            };
            out.push(format!("{}: only {who} has it", show(key)));
            continue;
        };
        let fields: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for f in fields {
            let (x, y) = (a.get(f).unwrap_or(&none), b.get(f).unwrap_or(&none));
            if x != y {
                out.push(format!("{}: {f} strata={x} tar={y}", show(key)));
            }
        }
    }
    out
}

/// Archives the tree with `writer`, adds the tar as a layer, unpacks it with strata and
/// extracts it with GNU tar; returns the rootfs strata made, once the two trees are equal.
fn unpack_like_tar(writer: &str, rich: bool) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    for tool in tools(writer, rich) {
        if !peer(tool) {
            return None;
        }
    }
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    source_tree(&src, rich);
    let tar = dir.path().join(format!("{writer}.tar"));
    write_tar(writer, &src, &tar);

    let layout = dir.path().join("layout");
    ok(&["new", &at(&layout, "t")]);
    ok(&["add-layer", &at(&layout, "t"), s(&tar)]);
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &at(&layout, "t"), s(&bundle)]);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    sh(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "-xpf",
            s(&tar),
            "-C",
            s(&reference),
        ],
    );
    let rootfs = bundle.join("rootfs");
    let (ours, mut theirs) = (scan(&rootfs), scan(&reference));
    // GNU tar sets a directory's times when the archive leaves it, so a member listed
    // later inside it (bsdtar and tarfile write a hardlink after its target, wherever that
    // is) moves them again; the archive's time is the source tree's.
    let source = scan(&src);
    for (path, fields) in theirs.iter_mut() {
        if fields["type"] == "dir" {
            fields.insert("mtime".into(), source[path]["mtime"].clone());
        }
        // GNU tar takes ACLs only from SCHILY.acl.* text and drops the
        // SCHILY.xattr.system.posix_acl_* records docker and BuildKit write (as the
        // tarfile script does); those must arrive as the source had them.
        if writer == "python-pax" {
            for (k, v) in &source[path] {
                if k.starts_with("xattr system.posix_acl_") {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let diff = differences(&ours, &theirs);
    assert!(
        diff.is_empty(),
        "{writer}: strata and GNU tar extract differently:\n  {}",
        diff.join("\n  ")
    );
    // Every feature the writer could store arrived (not just "both lost it").
    let long_file = format!(
        "{LONG}/sub/file-with-a-long-name-as-well-{}",
        "x".repeat(40)
    );
    assert_eq!(
        std::fs::read(rootfs.join(&long_file)).unwrap(),
        b"deep\n",
        "{writer}"
    );
    let plain = std::fs::metadata(rootfs.join("plain")).unwrap();
    let link = std::fs::metadata(rootfs.join(format!("{LONG}/hardlink-to-plain"))).unwrap();
    assert_eq!(plain.ino(), link.ino(), "{writer}: hardlink");
    let owned = std::fs::metadata(rootfs.join("owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o4750)
    );
    Some((dir, rootfs))
}

/// The sparse files hold the right bytes, and (where the writer kept the holes) holes.
fn assert_sparse(writer: &str, rootfs: &Path, holes: bool) {
    let data = std::fs::read(rootfs.join("sparse")).unwrap();
    assert_eq!(data.len(), 10 << 20, "{writer}");
    assert!(data
        .iter()
        .enumerate()
        .all(|(i, b)| *b == if i == 5 << 20 { b'x' } else { 0 }));
    let many = std::fs::read(rootfs.join("many-regions")).unwrap();
    assert_eq!(many.len(), 7 << 20, "{writer}");
    for i in 0..6usize {
        let text = format!("region {i}");
        assert_eq!(
            &many[i << 20..(i << 20) + text.len()],
            text.as_bytes(),
            "{writer}"
        );
    }
    if holes {
        let blocks = std::fs::metadata(rootfs.join("sparse")).unwrap().blocks();
        assert!(
            blocks * 512 < 1 << 20,
            "{writer}: the 10 MiB file takes {blocks} blocks"
        );
    }
}

#[test]
fn gnu_tar_gnu_format_long_names_and_old_sparse_headers() {
    if let Some((_dir, rootfs)) = unpack_like_tar("gnu", false) {
        assert_sparse("gnu", &rootfs, true);
    }
}

#[test]
fn gnu_tar_posix_sparse_0_0_xattrs_acls() {
    if let Some((_dir, rootfs)) = unpack_like_tar("posix-0.0", true) {
        assert_sparse("posix-0.0", &rootfs, true);
    }
}

#[test]
fn gnu_tar_posix_sparse_0_1_xattrs_acls() {
    if let Some((_dir, rootfs)) = unpack_like_tar("posix-0.1", true) {
        assert_sparse("posix-0.1", &rootfs, true);
    }
}

#[test]
fn gnu_tar_posix_sparse_1_0_xattrs_acls() {
    if let Some((_dir, rootfs)) = unpack_like_tar("posix-1.0", true) {
        assert_sparse("posix-1.0", &rootfs, true);
    }
}

#[test]
fn gnu_tar_posix_acl_text_only() {
    if let Some((_dir, rootfs)) = unpack_like_tar("posix-acls", true) {
        // Without --sparse the holes are stored as zeros.
        assert_sparse("posix-acls", &rootfs, false);
    }
}

/// What a layer of ACLs and capabilities unpacks to survives repack byte for byte, and
/// changes to them alone (setfacl, setcap move only ctime) reach the new layer.
#[test]
fn acls_and_capabilities_survive_unpack_and_repack() {
    let Some((dir, rootfs)) = unpack_like_tar("posix-1.0", true) else {
        return;
    };
    let bundle = rootfs.parent().unwrap().to_owned();
    let layout = dir.path().join("layout");
    sh("setfacl", &["-m", "u:4444:r--", s(&rootfs.join("plain"))]);
    sh(
        "setfacl",
        &["-d", "-m", "g:4545:rwx", s(&rootfs.join("acl-dir"))],
    );
    sh("setcap", &["cap_net_admin+ep", s(&rootfs.join("ping"))]);
    let changed = scan(&rootfs);
    ok(&["repack", s(&bundle), "--tag", "again"]);
    let again = dir.path().join("again");
    ok(&["unpack", &at(&layout, "again"), s(&again)]);
    let diff = differences(&scan(&again.join("rootfs")), &changed);
    assert!(diff.is_empty(), "repack lost:\n  {}", diff.join("\n  "));
    let plain = &changed[&b"plain".to_vec()];
    assert!(
        plain.contains_key("xattr system.posix_acl_access"),
        "{plain:?}"
    );
}

#[test]
fn bsdtar_read_sparse_xattrs_acls() {
    if let Some((_dir, rootfs)) = unpack_like_tar("bsdtar", true) {
        assert_sparse("bsdtar", &rootfs, true);
    }
}

#[test]
fn python_tarfile_pax_and_gnu() {
    for (writer, rich) in [("python-pax", true), ("python-gnu", false)] {
        if let Some((_dir, rootfs)) = unpack_like_tar(writer, rich) {
            // tarfile stores sparse files whole: the bytes are what counts.
            assert_sparse(writer, &rootfs, false);
        }
    }
}

#[test]
fn busybox_tar() {
    if let Some((_dir, rootfs)) = unpack_like_tar("busybox", false) {
        assert_sparse("busybox", &rootfs, false);
    }
}

/// PAX records, key and value.
type Records<'a> = Vec<(&'a str, &'a [u8])>;

/// A tar of `entries`: (type, name, PAX records), each a mode 0644 member with no data
/// (devices get 1:3), behind an optional global header.
fn tar_of(global: &[(&str, &[u8])], entries: &[(u8, &str, Records<'_>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if !global.is_empty() {
        let mut data = Vec::new();
        for (k, v) in global {
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend(format!("{len} {k}=").into_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XGlobalHeader);
        h.set_path("pax_global_header").unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    for (kind, name, pax) in entries {
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        if *kind == b'3' {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Unpacks `tar` as a one-layer image (written directly, so add-layer's check is not in
/// the way) and checks add-layer on its own: both accept it, or both refuse it with an
/// error holding every one of `named` (and the unpack's naming the layer's digest).
fn both_judge(tar: &[u8], named: &[&str]) {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("l")).unwrap();
    let image = crate::util::write_layered_image(
        &layout,
        "t",
        &[(tar.to_vec(), crate::util::Packing::Gzip)],
        serde_json::json!({}),
    );
    let bundle = dir.path().join("b");
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, tar).unwrap();
    let unpack = crate::util::run(&["unpack", &at(layout.root(), "t"), s(&bundle)]);
    let add = crate::util::run(&["add-layer", &at(layout.root(), "t"), s(&tar_path)]);
    if named.is_empty() {
        assert_eq!(unpack.code, 0, "unpack: {}", unpack.stderr);
        assert_eq!(add.code, 0, "add-layer: {}", add.stderr);
        return;
    }
    assert_eq!(unpack.code, 1, "unpack accepted it: {}", unpack.stdout);
    assert_eq!(add.code, 1, "add-layer accepted it: {}", add.stdout);
    assert!(!bundle.exists(), "a failed unpack leaves nothing");
    let digest = image.layers[0].to_string();
    assert!(unpack.stderr.contains(&digest), "{}", unpack.stderr);
    for name in named {
        assert!(
            unpack.stderr.contains(name),
            "unpack: {name}: {}",
            unpack.stderr
        );
        assert!(
            add.stderr.contains(name),
            "add-layer: {name}: {}",
            add.stderr
        );
    }
}

#[test]
fn records_that_change_nothing_are_accepted() {
    let harmless: Vec<(&str, &[u8])> = vec![
        ("ctime", b"1600000000.5"),
        ("comment", b"made by hand"),
        ("charset", b"ISO-IR 10646 2000 UTF-8"),
        ("hdrcharset", b"BINARY"),
        ("uname", b"someone"),
        ("gname", b"somegroup"),
        ("SCHILY.dev", b"2049"),
        ("SCHILY.ino", b"1234"),
        ("SCHILY.nlink", b"1"),
        ("LIBARCHIVE.creationtime", b"1600000000"),
    ];
    // git archive puts the commit in a global comment.
    both_judge(
        &tar_of(&[("comment", b"0123abcd")], &[(b'0', "f", harmless)]),
        &[],
    );
    // GNU tar --xattrs --acls: a text ACL naming a user the bytes resolve.
    let bytes = b"\x02\0\0\0\x01\0\x06\0\xff\xff\xff\xff\x02\0\x07\0\xe8\x03\0\0\x04\0\x04\0\xff\xff\xff\xff\x10\0\x07\0\xff\xff\xff\xff\x20\0\x04\0\xff\xff\xff\xff";
    let both: Records<'_> = vec![
        (
            "SCHILY.acl.access",
            b"user::rw-\nuser:alice:rwx\ngroup::r--\nmask::rwx\nother::r--\n",
        ),
        ("SCHILY.xattr.system.posix_acl_access", bytes),
    ];
    both_judge(&tar_of(&[], &[(b'0', "f", both)]), &[]);
}

#[test]
fn records_and_types_strata_cannot_apply_are_refused_by_name() {
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (
            tar_of(
                &[],
                &[(b'0', "flagged", vec![("SCHILY.fflags", b"nodump")])],
            ),
            vec!["SCHILY.fflags", "flagged"],
        ),
        (
            tar_of(&[], &[(b'0', "odd", vec![("VENDOR.something", b"x")])]),
            vec!["VENDOR.something", "odd"],
        ),
        (
            tar_of(
                &[],
                &[(b'5', "dir/", vec![("SCHILY.acl.ace", b"owner@:rw")])],
            ),
            vec!["SCHILY.acl.ace", "dir"],
        ),
        (
            tar_of(&[], &[(b'V', "label", vec![])]),
            vec!["'V'", "volume label", "label"],
        ),
        (
            tar_of(&[], &[(b'D', "dumpdir/", vec![])]),
            vec!["'D'", "dumpdir"],
        ),
        (
            tar_of(&[], &[(b'Q', "vendor", vec![])]),
            vec!["'Q'", "vendor"],
        ),
        (
            tar_of(&[("uid", b"0")], &[(b'0', "f", vec![])]),
            vec!["global PAX record", "uid"],
        ),
        (
            tar_of(
                &[],
                &[(
                    b'0',
                    "f",
                    vec![("GNU.sparse.major", b"2"), ("GNU.sparse.minor", b"0")],
                )],
            ),
            vec!["GNU.sparse format 2.0"],
        ),
        (
            tar_of(
                &[],
                &[(
                    b'0',
                    "acl",
                    vec![(
                        "SCHILY.acl.access",
                        b"user::rw-,user:alice:rwx,group::r--,mask::rwx,other::r--",
                    )],
                )],
            ),
            vec!["SCHILY.acl.access", "user:alice:rwx", "acl"],
        ),
    ];
    for (tar, named) in cases {
        both_judge(&tar, &named);
    }
}

/// star's device numbers too large for the header's fields.
#[test]
fn schily_device_numbers_are_applied() {
    let tar = tar_of(
        &[],
        &[(
            b'3',
            "dev",
            vec![
                ("SCHILY.devmajor", b"4095"),
                ("SCHILY.devminor", b"1048575"),
            ],
        )],
    );
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("l")).unwrap();
    crate::util::write_layered_image(
        &layout,
        "t",
        &[(tar, crate::util::Packing::Plain)],
        serde_json::json!({}),
    );
    let bundle = dir.path().join("b");
    ok(&["unpack", &at(layout.root(), "t"), s(&bundle)]);
    let dev = std::fs::symlink_metadata(bundle.join("rootfs/dev"))
        .unwrap()
        .rdev();
    assert_eq!(
        (rustix::fs::major(dev), rustix::fs::minor(dev)),
        (4095, 1_048_575)
    );
}

/// The named user and group entries of a file's access ACL (`getfacl -n`), as
/// `user:ID:perms`.
fn acl_names(path: &Path) -> Vec<String> {
    peer_ok("getfacl", &["-n", "-p", "-c", s(path)])
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f.len() == 3 && matches!(f[0], "user" | "group") && !f[1].is_empty()
        })
        .map(str::to_owned)
        .collect()
}

/// An ACL's named users and groups are owners: an id-mapped unpack maps them to host ids
/// as it maps files' owners, and repack maps them back.
#[test]
fn acl_ids_follow_the_id_maps() {
    if !peer("getfacl") {
        return;
    }
    let Some((dir, _)) = unpack_like_tar("posix-1.0", true) else {
        return;
    };
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("mapped");
    ok(&[
        "unpack",
        &at(&layout, "t"),
        s(&bundle),
        "--uid-map",
        "0:100000:65536",
        "--gid-map",
        "0:200000:65536",
    ]);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        acl_names(&rootfs.join("acl-file")),
        ["user:104242:rwx", "group:204343:r-x"]
    );
    sh("setfacl", &["-m", "u:104444:r--", s(&rootfs.join("plain"))]);
    ok(&["repack", s(&bundle), "--tag", "mapped"]);
    let plain = dir.path().join("plain");
    ok(&["unpack", &at(&layout, "mapped"), s(&plain)]);
    assert_eq!(
        acl_names(&plain.join("rootfs/acl-file")),
        ["user:4242:rwx", "group:4343:r-x"]
    );
    assert_eq!(acl_names(&plain.join("rootfs/plain")), ["user:4444:r--"]);
    // An ACL naming a host id outside the map cannot be stored.
    sh("setfacl", &["-m", "u:5:r--", s(&rootfs.join("plain"))]);
    let r = crate::util::run(&["repack", s(&bundle), "--tag", "unmappable"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("uid 5") && r.stderr.contains("plain"),
        "{}",
        r.stderr
    );
}
