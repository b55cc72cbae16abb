//! Hostile layouts: symlinks and special files in the layout's own structure, a digest
//! reached in two roles, and gc killed at every instant of its sweep.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata::spec::{media_type, to_canonical_json, Descriptor};
use strata::Layout;

use crate::util::*;

const SECRET: &[u8] = b"TOP-SECRET-shadow-entry";

fn blob_file(layout: &Path, digest: &impl ToString) -> PathBuf {
    let d = digest.to_string();
    let (alg, hex) = d.split_once(':').expect("a digest");
    layout.join("blobs").join(alg).join(hex)
}

/// A directory outside the layout with a few files, for a symlink to point at.
fn outside_dir(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    write(&outside.join("precious"), b"do not delete me");
    write(&outside.join("sub/also"), b"nor me");
    outside
}

/// Replaces `path` (a file or directory in a layout) with a symlink to a copy of it outside.
fn symlink_out(path: &Path, outside: &Path) {
    let status = Command::new("cp")
        .args(["-a", s(path), s(outside)])
        .status()
        .unwrap();
    assert!(status.success());
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
    std::os::unix::fs::symlink(outside, path).unwrap();
}

type Tree = std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>;

/// util::snapshot, but a symbolic link is recorded as its target, never followed: the
/// trees compared here hold links to directories.
fn snapshot_links(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                let mut bytes = b"-> ".to_vec();
                bytes.extend_from_slice(target.as_os_str().as_encoded_bytes());
                out.insert(rel, Some(bytes));
            } else if meta.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn assert_refused(args: &[&str], what: &str) {
    let r = run(args);
    assert_eq!(
        r.code, 1,
        "strata {args:?} accepted a symlinked {what}: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains(what) && r.stderr.contains("symbolic link"),
        "strata {args:?} does not name the symlinked {what}: {}",
        r.stderr
    );
}

#[test]
fn gc_refuses_a_symlinked_temp_dir_and_leaves_its_target_alone() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    write_image(&layout, &["garbage"], "amd64");
    let outside = outside_dir(dir.path());
    let tmp = layout.root().join(".strata-tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).unwrap();
    }
    std::os::unix::fs::symlink(&outside, &tmp).unwrap();
    let before = snapshot_links(dir.path());
    let r = s(layout.root());
    assert_refused(&["gc", r], ".strata-tmp");
    assert_refused(&["fsck", r], ".strata-tmp");
    assert_refused(&["tag", &format!("{r}:a"), "b"], ".strata-tmp");
    assert_eq!(
        snapshot_links(dir.path()),
        before,
        "the layout or the directory its .strata-tmp names changed"
    );
}

#[test]
fn symlinked_layout_structure_is_refused() {
    for (name, what) in [
        ("blobs", "blobs"),
        ("blobs/sha256", "sha256"),
        ("index.json", "index.json"),
        ("oci-layout", "oci-layout"),
    ] {
        let dir = tempdir();
        let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
        write_image(&layout, &["garbage"], "amd64");
        let root = layout.root().to_owned();
        let outside = dir.path().join("outside");
        symlink_out(&root.join(name), &outside);
        let before = snapshot_links(dir.path());
        let r = s(&root);
        assert_refused(&["gc", r], what);
        assert_refused(&["fsck", r], what);
        assert_refused(&["ls", r], what);
        assert_refused(&["tag", &format!("{r}:a"), "b"], what);
        assert_refused(
            &[
                "export",
                &format!("{r}:a"),
                "-o",
                s(&dir.path().join("x.tar")),
            ],
            what,
        );
        assert_eq!(
            snapshot_links(dir.path()),
            before,
            "{name}: the layout or its link's target changed"
        );
        let dest = dir.path().join("dest");
        assert_refused(&["copy", &format!("{r}:a"), s(&dest)], what);
        drop(images);
    }
}

/// A layout whose image's layer and config are symlinks to files outside holding a secret
/// (of the blob's size, so only the digest check at the end would catch it).
fn layout_with_symlinked_blobs(dir: &Path) -> (Layout, Image) {
    let (layout, images) = layout_with_images(dir, "lay", &["a"]);
    let image = images[0].clone();
    for digest in [&image.layers[0], &image.config] {
        let path = blob_file(layout.root(), digest);
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        let mut secret = SECRET.repeat(size / SECRET.len() + 1);
        secret.truncate(size);
        let target = dir.join(format!("secret-{}", digest.hex()));
        write(&target, &secret);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
    }
    (layout, image)
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "{what} leaked the secret"
    );
}

#[test]
fn a_blob_symlinked_outside_is_never_read() {
    let dir = tempdir();
    let (layout, image) = layout_with_symlinked_blobs(dir.path());
    let r = s(layout.root());
    let layer_path = blob_file(layout.root(), &image.layers[0]);
    let config_path = blob_file(layout.root(), &image.config);
    let before = snapshot_links(dir.path());

    let out = strata(&["export", &format!("{r}:a"), "-o", "-"])
        .output()
        .unwrap();
    assert_no_secret("export", &out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert!(
        stderr.contains(s(&config_path)) || stderr.contains(s(&layer_path)),
        "{stderr}"
    );

    let inspect = run(&["inspect", &format!("{r}:a")]);
    assert_eq!(inspect.code, 1);
    assert_no_secret("inspect", inspect.stdout.as_bytes());
    assert_no_secret("inspect", inspect.stderr.as_bytes());
    assert!(
        inspect.stderr.contains("is a symbolic link") && inspect.stderr.contains(s(&config_path)),
        "{}",
        inspect.stderr
    );

    assert_eq!(snapshot_links(dir.path()), before);
    let dest = dir.path().join("dest");
    let copy = run(&["copy", "--verify", &format!("{r}:a"), s(&dest)]);
    assert_eq!(copy.code, 1);
    assert!(
        copy.stderr.contains("is a symbolic link"),
        "{}",
        copy.stderr
    );
    if dest.exists() {
        for (path, bytes) in snapshot(&dest) {
            assert_no_secret(&path.display().to_string(), &bytes.unwrap_or_default());
        }
    }

    let fsck = run(&["fsck", r]);
    assert_eq!(fsck.code, 1);
    assert_no_secret("fsck", fsck.stdout.as_bytes());
    assert!(
        fsck.stdout.contains("is a symbolic link")
            && fsck.stdout.contains(&image.layers[0].to_string()),
        "{}",
        fsck.stdout
    );
    assert!(!fsck.stdout.contains("missing"), "{}", fsck.stdout);
}

/// Runs strata, killing it if it has not ended within a minute (a FIFO read blocks).
fn run_bounded(args: &[&str]) -> Run {
    let mut child = strata(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("strata {args:?} blocked on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_fifo_blob_is_refused_without_blocking() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    let path = blob_file(layout.root(), &images[0].config);
    std::fs::remove_file(&path).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let r = s(layout.root());
    let inspect = run_bounded(&["inspect", &format!("{r}:a")]);
    assert_eq!(inspect.code, 1);
    assert!(
        inspect.stderr.contains("is not a regular file") && inspect.stderr.contains(s(&path)),
        "{}",
        inspect.stderr
    );
    let fsck = run_bounded(&["fsck", r]);
    assert_eq!(fsck.code, 1);
    assert!(
        fsck.stdout.contains("is not a regular file"),
        "{}",
        fsck.stdout
    );
    let gc = run_bounded(&["gc", r]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        std::fs::symlink_metadata(&path).is_ok(),
        "gc removed a referenced name"
    );
}

#[test]
fn an_unreadable_blob_is_reported_as_such() {
    // Root reads every file: as root, run strata as nobody (setpriv) to meet a refusal.
    let as_root = rustix::process::geteuid().is_root();
    if as_root && !peer("setpriv") {
        return;
    }
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    let path = blob_file(layout.root(), &images[0].config);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let reference = format!("{}:a", s(layout.root()));
    let refused = |args: &[&str], path: &Path| {
        let out = strata_unprivileged(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ermission denied") && stderr.contains(s(path)),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("not found"), "{args:?}: {stderr}");
    };
    refused(&["inspect", &reference], &path);

    // A blob directory that cannot be searched: its blobs are unreadable, not missing.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sha256 = layout.root().join("blobs/sha256");
    std::fs::set_permissions(&sha256, std::fs::Permissions::from_mode(0o000)).unwrap();
    let dest = dir.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    if as_root {
        std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
    }
    refused(&["copy", &reference, s(&dest)], &sha256);
    std::fs::set_permissions(&sha256, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A layout tagged `both`: an index whose first entry is an artifact that carries the
/// second entry's image manifest as a layer, so the manifest is met first as a leaf.
fn two_role_layout(dir: &Path) -> (Layout, Image, Descriptor) {
    let layout = Layout::init(dir.join("lay")).unwrap();
    let image = write_image(&layout, &["inner"], "amd64");
    let empty = layout.put_blob(b"{}").unwrap();
    let mut as_layer = image.manifest.clone();
    as_layer.platform = None;
    as_layer.media_type = "application/octet-stream".into();
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/vnd.example.bundle",
        "config": Descriptor::new(media_type::EMPTY, &empty.digest, empty.size),
        "layers": [as_layer],
    });
    let artifact = layout.put_blob(&to_canonical_json(&artifact)).unwrap();
    let artifact = Descriptor::new(media_type::MANIFEST, &artifact.digest, artifact.size);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::INDEX,
        "manifests": [artifact, image.manifest],
    });
    let index = layout.put_blob(&to_canonical_json(&index)).unwrap();
    let index = Descriptor::new(media_type::INDEX, &index.digest, index.size);
    add_entry(&layout, &index, Some("both"));
    (layout, image, index)
}

fn assert_whole(layout: &Path, image: &Image) {
    let stored = stored_blobs(layout);
    for d in image.blobs() {
        assert!(stored.contains(&d.to_string()), "{d} is missing");
    }
    ok(&["fsck", s(layout)]);
}

#[test]
fn fsck_walks_a_manifest_first_met_as_a_layer() {
    let dir = tempdir();
    let (layout, _, _) = two_role_layout(dir.path());
    let report = json(&["fsck", s(layout.root()), "--json"]);
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report}");
}

#[test]
fn gc_walks_a_manifest_first_met_as_a_layer() {
    let dir = tempdir();
    let (layout, image, _) = two_role_layout(dir.path());
    let r = s(layout.root());
    let gc = json(&["gc", r, "--json"]);
    assert_eq!(gc["removed"], serde_json::json!([]), "{gc}");
    assert_whole(layout.root(), &image);
}

fn tar_names(archive: &Path) -> BTreeSet<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn export_carries_a_manifest_first_met_as_a_layer() {
    let dir = tempdir();
    let (layout, image, _) = two_role_layout(dir.path());
    let r = s(layout.root());
    let archive = dir.path().join("both.tar");
    ok(&[
        "export",
        "--all-platforms",
        &format!("{r}:both"),
        "-o",
        s(&archive),
    ]);
    let names = tar_names(&archive);
    for d in image.blobs() {
        let name = format!("blobs/sha256/{}", d.hex());
        assert!(names.contains(&name), "export left out {d}");
    }
}

#[test]
fn copy_carries_a_manifest_first_met_as_a_layer() {
    let dir = tempdir();
    let (layout, image, _) = two_role_layout(dir.path());
    let r = s(layout.root());
    let dest = dir.path().join("dest");
    ok(&["copy", "--all-platforms", &format!("{r}:both"), s(&dest)]);
    assert_whole(&dest, &image);
}

/// An archive of the whole layout directory, as another tool might write it.
fn archive_of(layout: &Path, archive: &Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(archive).unwrap());
    for name in ["oci-layout", "index.json"] {
        builder
            .append_path_with_name(layout.join(name), name)
            .unwrap();
    }
    for blob in stored_blobs(layout) {
        let name = format!("blobs/{}", blob.replace(':', "/"));
        builder
            .append_path_with_name(layout.join(&name), &name)
            .unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn import_publishes_a_manifest_first_met_as_a_layer_whole() {
    let dir = tempdir();
    let (layout, image, _) = two_role_layout(dir.path());
    let archive = dir.path().join("both.tar");
    archive_of(layout.root(), &archive);
    let dest = dir.path().join("dest");
    ok(&["init", s(&dest)]);
    ok(&["import", s(&archive), s(&dest)]);
    assert_whole(&dest, &image);

    // The same archive without the image's layer names what is missing and, taking every
    // platform, publishes nothing. (By default an import takes the platforms an archive holds
    // whole, as for ctr's and BuildKit's partial exports, and names the missing blobs.)
    std::fs::remove_file(blob_file(layout.root(), &image.layers[0])).unwrap();
    let partial = dir.path().join("partial.tar");
    archive_of(layout.root(), &partial);
    let dest2 = dir.path().join("dest2");
    ok(&["init", s(&dest2)]);
    let before = snapshot(dir.path().join("dest2").as_path());
    let err = fails(&["import", s(&partial), s(&dest2), "--all-platforms"], 1);
    assert!(err.contains(&image.layers[0].to_string()), "{err}");
    assert_eq!(snapshot(&dest2), before);
    let run = run(&["import", s(&partial), s(&dest2)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&image.layers[0].to_string()),
        "{}",
        run.stderr
    );
    ok(&["fsck", s(&dest2)]);
}

/// Whether strace can inject faults here; under STRATA_REQUIRE_PEERS=1 it must.
fn strace_usable() -> bool {
    if !peer("strace") {
        return false;
    }
    let works = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works && std::env::var("STRATA_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("strace cannot trace here (STRATA_REQUIRE_PEERS=1)");
    }
    works
}

#[test]
fn gc_killed_at_any_unlink_leaves_a_layout_every_command_accepts() {
    if !strace_usable() {
        return;
    }
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["kept", "gone"]);
    // Untagged referrers of the image about to go: gc drops their index.json entries.
    for payload in ["signature", "sbom"] {
        let referrer = write_referrer(&layout, &images[1].manifest, payload);
        add_entry(&layout, &referrer.manifest, None);
    }
    ok(&["untag", &format!("{}:gone", s(layout.root()))]);
    let dry = json(&["gc", s(layout.root()), "--dry-run", "--json"]);
    let removals = dry["removed"].as_array().unwrap().len();
    assert!(removals >= 5, "{dry}");
    assert_eq!(dry["entriesRemoved"], 2, "{dry}");

    for when in 1..=removals + 1 {
        let copy = dir.path().join(format!("try-{when}"));
        let status = Command::new("cp")
            .args(["-a", s(layout.root()), s(&copy)])
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new("strace")
            .args(["-f", "-o", "/dev/null", "-e", "trace=unlink,unlinkat", "-e"])
            .arg(format!("inject=unlink,unlinkat:signal=KILL:when={when}"))
            .args([strata_bin(), "gc", s(&copy)])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if when <= removals {
            assert!(!status.success(), "gc was not killed at unlink {when}");
        }
        let c = s(&copy);
        ok(&["ls", c]);
        ok(&["fsck", c]);
        ok(&["inspect", &format!("{c}:kept")]);
        ok(&["gc", c]);
        let after = json(&["fsck", c, "--json"]);
        assert_eq!(after["unreferenced"], serde_json::json!([]));
        assert_whole(&copy, &images[0]);
    }
}
