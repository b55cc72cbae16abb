//! A pulled blob reaches the disk while it downloads: its writeback is started every few
//! MiB and waited for behind the writes, its pages kept in the page cache, and still the
//! whole blob is fsynced before it is renamed under its digest (seen with strace on a real
//! registry).

use std::path::Path;
use std::process::Command;

use super::registry_util::{assert_fsck, blob_bytes, noise, tagged_digest, Registry};
use super::util::{ok, peer, s, tempdir, write_layered_image, Image, Packing, TarBuilder};

/// One traced call on the blob's temp file, in the order the trace gives.
#[derive(Debug, PartialEq)]
enum Call {
    /// sync_file_range(offset, len, flags)
    Range(u64, u64, String),
    /// fadvise(DONTNEED): must not happen (the cache is kept for the next reader).
    DontNeed,
    Fsync,
    /// Renamed away (under its digest).
    Renamed,
}

/// The calls on the file `tmp` in an `strace -f -y` log.
fn calls_on(log: &str, tmp: &str) -> Vec<Call> {
    let fd_arg = format!("<{tmp}>, ");
    let mut calls = Vec::new();
    for line in log.lines() {
        if line.contains(&format!("\"{tmp}\"")) && line.contains("rename") {
            calls.push(Call::Renamed);
        } else if let Some(at) = line.find(&fd_arg) {
            let args: Vec<&str> = line[at + fd_arg.len()..]
                .split([',', ')', ' '])
                .filter(|a| !a.is_empty())
                .collect();
            if line.contains("sync_file_range(") {
                calls.push(Call::Range(
                    args[0].parse().unwrap(),
                    args[1].parse().unwrap(),
                    args[2].to_owned(),
                ));
            } else if line.contains("fadvise64(") {
                assert_eq!(args[2], "POSIX_FADV_DONTNEED", "{line}");
                calls.push(Call::DontNeed);
            }
        } else if line.contains("fsync(") && line.contains(&format!("<{tmp}>")) {
            // Threads interleaving under load split a call: `fsync(5</p> <unfinished ...>`.
            calls.push(Call::Fsync);
        }
    }
    calls
}

/// Pulls `reference` into `dest` under strace with `strace_args`; returns whether it
/// succeeded, and its stderr.
fn pull_under_strace(reference: &str, dest: &Path, strace_args: &[&str]) -> (bool, String) {
    let out = Command::new("strace")
        .args(["-f", "-qq"])
        .args(strace_args)
        .arg("--")
        .arg(super::util::strata_bin())
        .args(["pull", "-q", reference, s(dest)])
        .output()
        .expect("running strace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Pulls `reference` into `dest` under strace; returns the log.
fn traced_pull(reference: &str, dest: &Path, log: &Path) -> String {
    let (pulled, stderr) = pull_under_strace(
        reference,
        dest,
        &[
            "-y",
            "-s",
            "4096",
            "-o",
            s(log),
            "-e",
            "trace=sync_file_range,fadvise64,fsync,fdatasync,rename,renameat,renameat2",
        ],
    );
    assert!(pulled, "pull failed: {stderr}");
    std::fs::read_to_string(log).unwrap()
}

/// A registry holding an image with one 40 MiB layer (uncompressed noise), pushed as
/// `writeback/big:big`; the layout it came from.
fn registry_with_a_large_image(top: &Path) -> Option<(Registry, strata::Layout, Image, String)> {
    let reg = Registry::plain()?;
    if !peer("strace") {
        return None;
    }
    let layout = strata::Layout::init(top.join("src")).unwrap();
    let content = noise(40 << 20, 14);
    let mut tar = TarBuilder::new();
    tar.file("big.bin", &content, 0o644);
    let image = write_layered_image(
        &layout,
        "big",
        &[(tar.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    let reference = reg.name("writeback/big:big");
    ok(&[
        "push",
        "-q",
        &format!("{}:big", s(layout.root())),
        &reference,
    ]);
    Some((reg, layout, image, reference))
}

#[test]
fn a_large_pulled_blob_is_written_out_as_it_comes_and_fsynced_before_it_is_published() {
    let Some(reg) = Registry::plain() else { return };
    if !peer("strace") {
        return;
    }
    let top = tempdir();
    let layout = strata::Layout::init(top.path().join("src")).unwrap();
    let content = noise(40 << 20, 14);
    let mut tar = TarBuilder::new();
    tar.file("big.bin", &content, 0o644);
    let image = write_layered_image(
        &layout,
        "big",
        &[(tar.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    let reference = reg.name("writeback/big:big");
    ok(&[
        "push",
        "-q",
        &format!("{}:big", s(layout.root())),
        &reference,
    ]);

    let dest = top.path().join("dest");
    let log = traced_pull(&reference, &dest, &top.path().join("strace.log"));

    // The temp file the layer was written to: what was renamed to the layer's name first.
    let layer = image.layers[0].to_string();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let rename = log
        .lines()
        .find(|l| l.contains("rename") && l.contains(&format!("/blobs/sha256/{hex}\"")))
        .unwrap_or_else(|| panic!("no rename to the layer's name in:\n{log}"));
    let tmp = rename.split('"').nth(1).unwrap();
    let calls = calls_on(&log, tmp);

    // Writeback asked for in aligned steps, from the start, while the blob was written...
    let started: Vec<(u64, u64)> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Range(off, len, flags) if flags == "SYNC_FILE_RANGE_WRITE" => Some((*off, *len)),
            _ => None,
        })
        .collect();
    assert!(started.len() >= 5, "{calls:?}");
    let mut next = 0;
    for (off, len) in &started {
        assert_eq!(*off, next, "{calls:?}");
        assert_eq!((off % 65536, len % 65536), (0, 0), "{calls:?}");
        next = off + len;
    }
    // ...and waited for behind it, the pages left in the page cache for whoever reads the
    // blob next (unpack, push)...
    assert!(
        calls.iter().any(|c| matches!(c, Call::Range(0, _, flags)
            if flags == "SYNC_FILE_RANGE_WAIT_BEFORE|SYNC_FILE_RANGE_WRITE|SYNC_FILE_RANGE_WAIT_AFTER")),
        "{calls:?}"
    );
    assert!(!calls.contains(&Call::DontNeed), "{calls:?}");
    // ...and the whole file fsynced after all that, and before its rename.
    let fsync = calls.iter().position(|c| *c == Call::Fsync);
    let renamed = calls.iter().position(|c| *c == Call::Renamed);
    let last_range = calls.iter().rposition(|c| matches!(c, Call::Range(..)));
    assert!(
        fsync.is_some() && renamed.is_some() && last_range < fsync && fsync < renamed,
        "{calls:?}"
    );

    // The config is small: written plainly, no hints.
    let config = image.config.to_string();
    let config_hex = config.strip_prefix("sha256:").unwrap();
    let config_rename = log
        .lines()
        .find(|l| l.contains("rename") && l.contains(&format!("/blobs/sha256/{config_hex}\"")))
        .unwrap_or_else(|| panic!("no rename to the config's name in:\n{log}"));
    let config_calls = calls_on(&log, config_rename.split('"').nth(1).unwrap());
    assert_eq!(config_calls, [Call::Fsync, Call::Renamed]);

    // And what was written is what was pulled.
    assert_eq!(blob_bytes(&dest, &layer), blob_bytes(layout.root(), &layer));
    assert_fsck(&dest);
}

#[test]
fn a_write_error_seen_by_the_early_writeback_fails_the_pull_and_one_refused_does_not() {
    let top = tempdir();
    let Some((_reg, layout, image, reference)) = registry_with_a_large_image(top.path()) else {
        return;
    };
    let layer = image.layers[0].to_string();
    let hex = layer.strip_prefix("sha256:").unwrap();

    // The kernel reports a failed writeback once per open file: had strata ignored it, the
    // fsync after it would succeed and a blob with lost pages would be published.
    let dest = top.path().join("failed");
    let (pulled, stderr) = pull_under_strace(
        &reference,
        &dest,
        &[
            "-o",
            "/dev/null",
            "-e",
            "inject=sync_file_range:error=EIO:when=2+",
        ],
    );
    assert!(!pulled, "the pull succeeded despite the write error");
    assert!(stderr.contains("Input/output error"), "{stderr}");
    assert!(!dest.join("blobs/sha256").join(hex).exists());
    if dest.join("index.json").exists() {
        assert_eq!(tagged_digest(&dest, "big"), None);
    }

    // A file system that does not do sync_file_range: the hints stop, the pull goes on.
    let dest = top.path().join("plain");
    let (pulled, stderr) = pull_under_strace(
        &reference,
        &dest,
        &[
            "-o",
            "/dev/null",
            "-e",
            "inject=sync_file_range:error=EINVAL",
        ],
    );
    assert!(pulled, "{stderr}");
    assert_eq!(blob_bytes(&dest, &layer), blob_bytes(layout.root(), &layer));
    assert_fsck(&dest);
}
