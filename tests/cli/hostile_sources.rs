//! Hostile sources: trees that change under build and repack, pull directories that already
//! hold the user's files, and dates no peer can parse. Nothing outside what a command was
//! given may be read, replaced or deleted, and a refusal leaves everything as it was.

use crate::build::{at, raw_config, strata_unpack, Fs, Refusals};
use crate::util::{ok, run, run_with_env, s, tar_layer, tempdir};

// ---------------------------------------------------------------------------------------
// Dates: RFC 3339 with a four-digit year, or a clear error before any blob is written
// ---------------------------------------------------------------------------------------

#[test]
fn out_of_range_dates_are_refused_before_anything_is_written() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    let tree = dir.path().join("tree");
    Fs(&tree).write("etc/motd", "hello\n", 0o644);
    ok(&["build", s(&tree), &at(&layout, "keep")]);
    let bundle = dir.path().join("bundle");
    strata_unpack(&at(&layout, "keep"), &bundle);
    Fs(&bundle.join("rootfs")).write("etc/motd", "changed\n", 0o644);
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, tar_layer("dates")).unwrap();
    let fresh = dir.path().join("fresh");
    let (keep, out) = (at(&layout, "keep"), at(&layout, "out"));
    let fresh_ref = at(&fresh, "t");
    let commands: Vec<Vec<&str>> = vec![
        vec!["build", s(&tree), &out],
        vec!["build", s(&tree), &out, "--from", &keep],
        vec!["build", s(&tree), &fresh_ref],
        vec!["new", &out],
        vec!["new", &fresh_ref],
        vec!["config", &keep, "--tag", "out", "--env", "A=1"],
        vec!["insert", &keep, s(&tar_path), "/x", "--tag", "out"],
        vec!["insert", &keep, "--whiteout", "/etc", "--tag", "out"],
        vec!["add-layer", &keep, s(&tar_path), "--tag", "out"],
        vec!["repack", s(&bundle), "--tag", "out"],
    ];
    let mut refusals = Refusals::new(&layout);
    // 10000-01-01T00:00:00Z, far beyond, the year -1, and before 1970 (a tar mtime
    // cannot hold it).
    for epoch in ["253402300800", "99999999999999999", "-62167219201", "-1"] {
        for args in &commands {
            let r = run_with_env(args, &[("SOURCE_DATE_EPOCH", epoch)]);
            refusals.check(
                &format!("SOURCE_DATE_EPOCH={epoch} {args:?}"),
                &r,
                &["SOURCE_DATE_EPOCH", epoch],
            );
            assert!(!fresh.exists(), "{args:?} left a new layout behind");
        }
    }
    let bad_times = [
        "10000-01-01T00:00:00Z",
        "+10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00Zjunk",
        "2024-01-01T00:00:00-0100",
        "2024-01-01T00:00:00.Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01t00:00:00z",
        // In range as written, out of range in UTC.
        "9999-12-31T23:59:59-00:01",
        "0000-01-01T00:00:00+00:01",
    ];
    for time in bad_times {
        // `--flag=VALUE`: a value may start with `-`.
        let (created, history) = (
            format!("--created={time}"),
            format!("--history-created={time}"),
        );
        let (created, history) = (created.as_str(), history.as_str());
        let with_time: Vec<Vec<&str>> = vec![
            vec!["build", s(&tree), &out, created],
            vec!["build", s(&tree), &fresh_ref, history],
            vec!["config", &keep, "--tag", "out", created],
            vec!["config", &keep, "--tag", "out", history],
            vec!["insert", &keep, s(&tar_path), "/x", "--tag", "out", history],
            vec!["add-layer", &keep, s(&tar_path), "--tag", "out", history],
            vec!["repack", s(&bundle), "--tag", "out", history],
        ];
        for args in with_time {
            let r = run(&args);
            refusals.check(&format!("{args:?}"), &r, &[time]);
            assert!(!fresh.exists(), "{args:?} left a new layout behind");
        }
    }
    refusals.finish();

    // The edges of the range are fine, and written as such.
    let r = run_with_env(
        &["new", &at(&layout, "last")],
        &[("SOURCE_DATE_EPOCH", "253402300799")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        raw_config(&layout, "last")["created"],
        "9999-12-31T23:59:59Z"
    );
    let r = run_with_env(
        &["build", s(&tree), &at(&layout, "first")],
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        raw_config(&layout, "first")["created"],
        "1970-01-01T00:00:00Z"
    );
    for good in [
        "2024-02-29T23:59:59.123456789+05:30",
        "0000-01-01T00:00:00Z",
        "0000-01-01T23:59:59-00:01",
        "9999-12-31T23:59:59Z",
    ] {
        ok(&["config", &keep, "--tag", "good", "--created", good]);
        assert_eq!(raw_config(&layout, "good")["created"], good);
    }
}
