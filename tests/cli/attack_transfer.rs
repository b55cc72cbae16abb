//! Attacks on the transfer commands: archives crafted to exhaust memory through the tar
//! format's own extensions, and the oddities legitimate writers use that a defence must not
//! break.

use std::io::Write;
use std::path::Path;

use crate::util::*;

/// A gzip stream (several members, as pigz writes) of `head` followed by `zeros` MiB of zero
/// bytes: a few KB on disk, however large `zeros`.
fn gzip_bomb(head: &[u8], zeros: usize) -> Vec<u8> {
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut out = gz(head);
    let mib = gz(&vec![0u8; 1 << 20]);
    for _ in 0..zeros {
        out.extend_from_slice(&mib);
    }
    out
}

/// A GNU header of `kind` for `name` declaring `size` bytes.
fn header(kind: tar::EntryType, name: &str, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    *h.as_bytes()
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // The record's length counts its own digits.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while body.len() + len.to_string().len() != len {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}").into_bytes()
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

/// The import fails with exit 1, naming `needles`, and leaves `dest` unmade.
fn refused(dir: &Path, archive: &[u8], needles: &[&str]) {
    let path = dir.join("bomb.tar.gz");
    write(&path, archive);
    let dest = dir.join("dest");
    let started = std::time::Instant::now();
    let err = fails(&["import", s(&path), s(&dest)], 1);
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(!dest.exists(), "a refused import left {}", dest.display());
    assert!(
        started.elapsed().as_secs() < 60,
        "refusing took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_gzip_bomb_declaring_a_huge_gnu_long_name_is_refused_before_it_is_read() {
    // The tar crate reads a long name whole into memory: 64 MiB here, 10 GB as easily.
    let dir = tempdir();
    let head = header(tar::EntryType::GNULongName, "././@LongLink", 64 << 20);
    refused(
        dir.path(),
        &gzip_bomb(&head, 64),
        &["././@LongLink", "long name", "limit"],
    );
}

#[test]
fn a_gzip_bomb_declaring_a_huge_pax_header_is_refused_before_it_is_read() {
    let dir = tempdir();
    let head = header(tar::EntryType::XHeader, "PaxHeaders/x", 64 << 20);
    refused(
        dir.path(),
        &gzip_bomb(&head, 64),
        &["PaxHeaders/x", "PAX header", "limit"],
    );
}

#[test]
fn an_archive_of_endless_long_member_names_is_refused_before_memory_fills() {
    // Each name is kept until the stream ends (ignored members are reported): 1100 names of
    // 60 KiB, 64 MiB in all, from a small gzip stream.
    let dir = tempdir();
    let mut tar = Vec::new();
    for i in 0..1100 {
        let name = format!("{i:08}{}", "x".repeat(60 << 10));
        let mut body = name.into_bytes();
        body.push(0);
        tar.extend_from_slice(&header(
            tar::EntryType::GNULongName,
            "././@LongLink",
            body.len() as u64,
        ));
        tar.extend_from_slice(&padded(&body));
        tar.extend_from_slice(&header(tar::EntryType::Regular, "stray", 0));
    }
    tar.extend_from_slice(&[0; 1024]);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar).unwrap();
    refused(dir.path(), &e.finish().unwrap(), &["member names add up"]);
}

/// An OCI archive of `src`'s `app`, every member rewritten as PAX does for a large file: a
/// PAX header giving its size (and a long path), the ustar header's own size field zero.
fn pax_sized(archive: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut pax = pax_record("size", &data.len().to_string());
        pax.extend(pax_record("path", &format!("./{name}")));
        pax.extend(pax_record("mtime", "1700000000.5"));
        let mut xh = tar::Header::new_ustar();
        xh.set_entry_type(tar::EntryType::XHeader);
        xh.set_size(pax.len() as u64);
        xh.set_mode(0o644);
        xh.as_old_mut().name[..6].copy_from_slice(b"paxhdr");
        xh.set_cksum();
        out.extend_from_slice(xh.as_bytes());
        out.extend(padded(&pax));
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(0);
        let short = &name[..name.len().min(100)];
        h.as_old_mut().name[..short.len()].copy_from_slice(short.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend(padded(&data));
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

#[test]
fn an_archive_whose_sizes_come_from_pax_headers_imports() {
    // The header guard must find headers where the tar crate does: a PAX `size` overrides
    // the ustar header's. Plain and gzip-compressed, since the guard sits after the decoder.
    let dir = tempdir();
    let (_, _) = layout_with_images(dir.path(), "src", &["app"]);
    let src = dir.path().join("src");
    let archive = dir.path().join("app.tar");
    ok(&["export", &format!("{}:app", s(&src)), "-o", s(&archive)]);
    let pax = pax_sized(&std::fs::read(&archive).unwrap());
    let plain = dir.path().join("pax.tar");
    write(&plain, &pax);
    let gz = dir.path().join("pax.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&pax).unwrap();
    write(&gz, &e.finish().unwrap());
    for (i, input) in [&plain, &gz].into_iter().enumerate() {
        let dest = dir.path().join(format!("dest{i}"));
        ok(&["import", s(input), s(&dest)]);
        ok(&["inspect", &format!("{}:app", s(&dest))]);
        let report = json(&["fsck", s(&dest), "--json"]);
        assert_eq!(report["ok"], true, "{report:#}");
    }
}

#[test]
fn export_refuses_to_write_its_archive_over_a_layout_it_reads() {
    // `-o` naming a blob (or index.json) of the source layout renamed the finished archive
    // over it: exit 0 and a corrupt layout.
    let dir = tempdir();
    let (_, images) = layout_with_images(dir.path(), "src", &["app"]);
    let (_, _) = layout_with_images(dir.path(), "have", &["base"]);
    let src = dir.path().join("src");
    let have = dir.path().join("have");
    let blob = src.join("blobs/sha256").join(images[0].layers[0].hex());
    let elsewhere = tempdir();
    let via_link = elsewhere.path().join("link");
    std::os::unix::fs::symlink(src.join("blobs"), &via_link).unwrap();
    let before = snapshot(dir.path());
    let app = format!("{}:app", s(&src));
    for target in [
        blob.clone(),
        src.join("index.json"),
        src.join("oci-layout"),
        via_link.join("sha256").join(images[0].config.hex()),
    ] {
        for format in ["oci", "docker"] {
            let err = fails(&["export", &app, "--format", format, "-o", s(&target)], 1);
            assert!(err.contains("over the files of the layout"), "{err}");
            assert!(
                snapshot(dir.path()) == before,
                "export -o {} changed files",
                target.display()
            );
        }
    }
    // The layout an incremental archive leaves blobs out for is read too.
    let err = fails(
        &[
            "export",
            &app,
            "--exclude-present-in",
            s(&have),
            "-o",
            s(&have.join("index.json")),
        ],
        1,
    );
    assert!(err.contains("over the files of the layout"), "{err}");
    assert!(snapshot(dir.path()) == before);
    // Beside the layout, or a stray file in its directory, is fine.
    ok(&["export", &app, "-o", s(&dir.path().join("app.tar"))]);
    ok(&["export", &app, "-o", s(&src.join("out.tar"))]);
    let report = json(&["fsck", s(&src), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
}

/// `archive`'s regular members, `edit` given each (name, content) to change or keep.
fn rewritten(archive: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    use std::io::Read;
    let bytes = std::fs::read(archive).unwrap();
    let mut a = tar::Archive::new(&bytes[..]);
    let mut t = TarBuilder::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        t.file(&name, &edit(&name, data), 0o644);
    }
    t.finish()
}

/// A layout `src` with `app`, and its archive in `format`.
fn exported(dir: &Path, format: &str) -> std::path::PathBuf {
    layout_with_images(dir, "src", &["app"]);
    let archive = dir.join(format!("app.{format}.tar"));
    let app = format!("{}:app", s(&dir.join("src")));
    ok(&["export", &app, "--format", format, "-o", s(&archive)]);
    archive
}

#[test]
fn an_oci_archive_listing_one_image_under_endless_tags_is_refused_quickly() {
    // Checking tags against each other and the destination's index is quadratic: 20000
    // entries (a 5 MB index.json) took minutes, a million would never end.
    let dir = tempdir();
    let archive = exported(dir.path(), "oci");
    let tar = rewritten(&archive, |name, data| {
        if name != "index.json" {
            return data;
        }
        let mut index: serde_json::Value = serde_json::from_slice(&data).unwrap();
        let entry = index["manifests"][0].clone();
        let many: Vec<_> = (0..20_000)
            .map(|i| {
                let mut e = entry.clone();
                e["annotations"]["org.opencontainers.image.ref.name"] = format!("t{i}").into();
                e
            })
            .collect();
        index["manifests"] = many.into();
        serde_json::to_vec(&index).unwrap()
    });
    refused(dir.path(), &tar, &["index.json", "20000 entries", "limit"]);
}

#[test]
fn a_docker_archive_giving_one_image_endless_repo_tags_is_refused_quickly() {
    let dir = tempdir();
    let archive = exported(dir.path(), "docker");
    let tar = rewritten(&archive, |name, data| {
        if name != "manifest.json" {
            return data;
        }
        let mut m: serde_json::Value = serde_json::from_slice(&data).unwrap();
        let tags: Vec<_> = (0..20_000).map(|i| format!("t{i}:latest")).collect();
        m[0]["RepoTags"] = tags.into();
        m[0].as_object_mut().unwrap().remove("StrataLayoutTags");
        serde_json::to_vec(&m).unwrap()
    });
    refused(dir.path(), &tar, &["manifest.json", "tags", "limit"]);
}

#[test]
fn a_docker_archive_whose_entries_share_one_huge_config_is_refused() {
    // Each entry's config is read and parsed anew: nine entries naming one 30 MB config
    // parse 270 MB, and a 64 MB manifest.json could name it a million times.
    let dir = tempdir();
    let archive = exported(dir.path(), "docker");
    let config_name = std::cell::RefCell::new(String::new());
    let tar = rewritten(&archive, |name, data| {
        if name == "manifest.json" {
            let m: serde_json::Value = serde_json::from_slice(&data).unwrap();
            *config_name.borrow_mut() = m[0]["Config"].as_str().unwrap().to_owned();
            let mut entry = m[0].clone();
            entry.as_object_mut().unwrap().remove("StrataLayoutTags");
            entry["RepoTags"] = serde_json::json!([]);
            return serde_json::to_vec(&vec![entry; 9]).unwrap();
        }
        data
    });
    // The config is the member named in manifest.json: grow it with a 30 MB label.
    let config = config_name.borrow().clone();
    let tar = rewritten_bytes(&tar, |name, data| {
        if name != config {
            return data;
        }
        let mut c: serde_json::Value = serde_json::from_slice(&data).unwrap();
        c["config"]["Labels"] = serde_json::json!({ "pad": "x".repeat(30 << 20) });
        serde_json::to_vec(&c).unwrap()
    });
    refused(dir.path(), &tar, &["manifest.json", "configs add up"]);
}

fn rewritten_bytes(tar: &[u8], edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let path = tempdir();
    let file = path.path().join("a.tar");
    write(&file, tar);
    rewritten(&file, edit)
}
