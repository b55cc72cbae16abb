//! The gaps left in issue 12's command-line surface: shared options only where they act,
//! examples on every page, completion of tags in bash and under --layout, artifact paths
//! as oras takes them, aligned file lists.

use crate::util::*;

/// The lines of `strata ARGS --help` under the "Global options:" heading.
fn global_section(args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.push("--help");
    let help = ok(&full);
    let (own, global) = help
        .split_once("\nGlobal options:\n")
        .unwrap_or_else(|| panic!("strata {args:?} --help has no Global options:\n{help}"));
    assert!(
        !own.contains("--threads") && !own.contains("--layout"),
        "{help}"
    );
    global.to_owned()
}

#[test]
fn threads_and_layout_are_offered_only_where_they_act() {
    // Commands that compress layers or hash blobs take --threads; commands that take a REF
    // take --layout; each shown under its own heading, apart from the command's options.
    for (cmd, threads, layout) in [
        (&["gc"][..], false, false),
        (&["ls"][..], false, false),
        (&["init"][..], false, false),
        (&["completions"][..], false, false),
        (&["man"][..], false, false),
        (&["export"][..], false, true),
        (&["inspect"][..], false, true),
        (&["rebase"][..], false, true),
        (&["fsck"][..], true, false),
        (&["repack"][..], true, false),
        (&["import"][..], true, false),
        (&["build"][..], true, true),
        (&["convert"][..], true, true),
        (&["insert"][..], true, true),
        (&["artifact", "push"][..], true, true),
        (&["artifact", "pull"][..], false, true),
        (&["index", "create"][..], false, true),
        (&["blob", "put"][..], false, false),
    ] {
        let global = global_section(cmd);
        assert_eq!(
            global.contains("--threads <N>"),
            threads,
            "{cmd:?}: {global}"
        );
        assert_eq!(
            global.contains("--layout <DIR>"),
            layout,
            "{cmd:?}: {global}"
        );
        assert!(global.contains("--quiet"), "{cmd:?}: {global}");
    }
}

#[test]
fn a_command_refuses_a_shared_option_it_does_not_act_on() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["init", s(&lay)]);
    for args in [
        &["gc", "--threads", "2", s(&lay)][..],
        &["--threads", "2", "gc", s(&lay)][..],
        &["completions", "--layout", s(&lay), "bash"][..],
        &["--layout", s(&lay), "completions", "bash"][..],
        &["ls", "--layout", s(&lay)][..],
        &["--layout", s(&lay), "ls", s(&lay)][..],
    ] {
        let before = snapshot(&lay);
        let err = fails(args, 2);
        assert!(
            err.contains("--threads") || err.contains("--layout"),
            "{args:?}: {err}"
        );
        assert_eq!(snapshot(&lay), before, "{args:?}");
    }
    // STRATA_THREADS is read only by commands that use threads: a bad value stops those.
    let r = run_with_env(&["gc", s(&lay)], &[("STRATA_THREADS", "many")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_with_env(&["fsck", s(&lay)], &[("STRATA_THREADS", "many")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn layout_works_after_the_command_and_before_it() {
    let dir = tempdir();
    let lay = dir.path().join("my:lay");
    ok(&["new", "--layout", s(&lay), ":v1"]);
    let after = json(&["inspect", "--layout", s(&lay), ":v1", "--json"]);
    let before = json(&["--layout", s(&lay), "inspect", ":v1", "--json"]);
    assert_eq!(after, before);
    // The command's own --layout wins over the one before it.
    let err = fails(
        &[
            "--layout",
            s(&dir.path().join("none")),
            "inspect",
            "--layout",
            s(&lay),
            ":v2",
        ],
        1,
    );
    assert!(err.contains("my:lay") && err.contains("v2"), "{err}");
    ok(&["tag", "--layout", s(&lay), ":v1", "v2"]);
    ok(&[
        "--threads",
        "1",
        "--layout",
        s(&lay),
        "artifact",
        "push",
        ":a",
        "--artifact-type",
        "x/y",
    ]);
}

#[test]
fn man_pages_show_shared_options_apart_and_only_where_they_act() {
    let dir = tempdir();
    ok(&["man", s(dir.path())]);
    let page = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let gc = page("strata-gc.1");
    assert!(
        !gc.contains("threads") && !gc.contains("STRATA_THREADS"),
        "{gc}"
    );
    assert!(!gc.contains("\\-\\-layout"), "{gc}");
    let build = page("strata-build.1");
    let (own, global) = build.split_once(".SH \"GLOBAL OPTIONS\"").unwrap();
    let own = own.split_once(".SH OPTIONS").unwrap().1;
    assert!(
        !own.contains("\\-\\-threads") && !own.contains("\\-\\-layout <"),
        "{own}"
    );
    let global = global.split(".SH ").next().unwrap();
    assert!(
        global.contains("\\-\\-threads") && global.contains("\\-\\-layout"),
        "{global}"
    );
    assert!(build.contains("STRATA_THREADS"));
    // STRATA_RESOLVE changes only how unpack writes under a rootfs.
    assert!(!gc.contains("STRATA_RESOLVE") && !build.contains("STRATA_RESOLVE"));
    assert!(page("strata-unpack.1").contains("STRATA_RESOLVE"));
    assert!(page("strata.1").contains("STRATA_RESOLVE"));
}

/// Every page, at every depth, has an EXAMPLES section showing its own command (the
/// examples are parsed by the CLI's parser in a unit test of src/cli/man.rs).
#[test]
fn every_man_page_has_examples_of_its_command() {
    let dir = tempdir();
    ok(&["man", s(dir.path())]);
    let mut pages = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let (_, examples) = text
            .split_once(".SH EXAMPLES\n")
            .unwrap_or_else(|| panic!("{name}: no EXAMPLES"));
        let examples = examples.split("\n.SH ").next().unwrap();
        // strata-artifact-push is typed `strata artifact push`; add-layer keeps its dash
        // (written `\-` in roff).
        let typed = format!("{} ", name.replace('-', " "))
            .replace("add layer", "add\\-layer")
            .replace("runtime config", "runtime\\-config");
        let shown = examples.contains(&typed);
        assert!(shown, "{name}: no example of it:\n{examples}");
        pages += 1;
    }
    assert!(pages >= 40, "{pages}");
}

/// What bash would offer for `line` (completed at its end), split into `words` as bash
/// splits it with `breaks` as COMP_WORDBREAKS: the dynamic registration script is sourced
/// and its function called as bash's programmable completion calls it.
fn bash_completes(cwd: &std::path::Path, line: &str, words: &[&str], breaks: &str) -> Vec<String> {
    let script = r#"
source <(COMPLETE=bash "$STRATA") || exit 9
func=$(complete -p strata | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDBREAKS=$BREAKS
COMP_LINE=$LINE; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
eval "COMP_WORDS=($WORDS)"
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$func" strata "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRATA", strata_bin())
        .env("BREAKS", breaks)
        .env("LINE", line)
        .env("WORDS", quoted.join(" "))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    got
}

/// bash's default COMP_WORDBREAKS.
const BREAKS: &str = " \t\n\"'><=;|&(:";

fn layout_with_tags(dir: &std::path::Path) {
    for tag in ["test", "t2", "other"] {
        ok(&["new", &format!("{}:{tag}", s(&dir.join("lay")))]);
    }
}

#[test]
fn bash_completes_a_tag_after_the_colon_it_splits_at() {
    let dir = tempdir();
    layout_with_tags(dir.path());
    // Bash splits lay:t into lay, :, t and replaces only the t.
    assert_eq!(
        bash_completes(
            dir.path(),
            "strata inspect lay:t",
            &["strata", "inspect", "lay", ":", "t"],
            BREAKS
        ),
        ["t2", "test"]
    );
    assert_eq!(
        bash_completes(
            dir.path(),
            "strata inspect lay:",
            &["strata", "inspect", "lay", ":"],
            BREAKS
        ),
        ["other", "t2", "test"]
    );
    // With `:` taken out of COMP_WORDBREAKS (as the README once advised) the word is whole.
    let no_colon = BREAKS.replace(':', "");
    assert_eq!(
        bash_completes(
            dir.path(),
            "strata inspect lay:t",
            &["strata", "inspect", "lay:t"],
            &no_colon
        ),
        ["lay:t2", "lay:test"]
    );
    // Before the colon: the layout as `lay:`, and as a directory.
    assert_eq!(
        bash_completes(
            dir.path(),
            "strata tag la",
            &["strata", "tag", "la"],
            BREAKS
        ),
        ["lay/", "lay:"]
    );
}

#[test]
fn completion_offers_the_tags_of_the_layout_option() {
    let dir = tempdir();
    layout_with_tags(dir.path());
    // Before the command, after it, and as --layout=DIR (bash splits at the `=` too): a REF
    // with an empty layout part names --layout's, so the candidates are `:TAG`.
    for (line, words) in [
        (
            "strata --layout lay inspect :t",
            &["strata", "--layout", "lay", "inspect", ":", "t"][..],
        ),
        (
            "strata inspect --layout lay :t",
            &["strata", "inspect", "--layout", "lay", ":", "t"][..],
        ),
        (
            "strata inspect --layout=lay :t",
            &["strata", "inspect", "--layout", "=", "lay", ":", "t"][..],
        ),
    ] {
        assert_eq!(
            bash_completes(dir.path(), line, words, BREAKS),
            ["t2", "test"],
            "{line}"
        );
        let no_colon = BREAKS.replace(':', "");
        let mut joined: Vec<&str> = words[..words.len() - 2].to_vec();
        joined.push(":t");
        assert_eq!(
            bash_completes(dir.path(), line, &joined, &no_colon),
            [":t2", ":test"],
            "{line}"
        );
    }
    // Nothing typed yet: the layout's tags as `:TAG`, and directories for a full REF.
    let got = bash_completes(
        dir.path(),
        "strata unpack --layout lay ",
        &["strata", "unpack", "--layout", "lay", ""],
        BREAKS,
    );
    for want in [":other", ":t2", ":test", "lay/"] {
        assert!(got.iter().any(|g| g == want), "{want}: {got:?}");
    }
    assert!(!got.iter().any(|g| g == "test"), "{got:?}");
}

/// As oras: an absolute file path is refused unless --disable-path-validation (strata then
/// titles it by its file name, which a pull writes back); `..` likewise. A wrong value:
/// exit 2, every such path named, nothing written (not even the layout).
#[test]
fn artifact_push_refuses_paths_leading_out_of_the_pull_directory() {
    let dir = tempdir();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let abs = work.join("abs.txt");
    std::fs::write(&abs, "abs").unwrap();
    std::fs::write(work.join("up.txt"), "up").unwrap();
    let up = s(&work.join("sub/../up.txt")).to_owned();
    let lay = dir.path().join("lay");
    let t = format!("{}:t", s(&lay));
    let push = ["artifact", "push", &t, "--artifact-type", "application/x"];
    let err = fails(&[&push[..], &[s(&abs), &up]].concat(), 2);
    assert!(
        err.contains(s(&abs)) && err.contains(&up) && err.contains("--disable-path-validation"),
        "{err}"
    );
    assert!(!lay.exists(), "a refused push created the layout");
    let attach = fails(
        &[
            "artifact",
            "attach",
            &t,
            "--artifact-type",
            "application/x",
            s(&abs),
        ],
        2,
    );
    assert!(attach.contains(s(&abs)), "{attach}");
    // Accepted when asked, titled by the file name, and pulled back by it.
    ok(&[&push[..], &["--disable-path-validation", s(&abs), &up]].concat());
    let m = json(&["inspect", &t, "--json"]);
    let titles: Vec<&str> = m["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{m}"))
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["abs.txt", "up.txt"], "{m}");
    let out = dir.path().join("out");
    ok(&["artifact", "pull", &t, s(&out)]);
    assert_eq!(std::fs::read_to_string(out.join("abs.txt")).unwrap(), "abs");
    assert_eq!(std::fs::read_to_string(out.join("up.txt")).unwrap(), "up");
    // The config is not titled: an absolute path is fine there.
    let config = work.join("c.json");
    std::fs::write(&config, "{}").unwrap();
    ok(&[
        "artifact",
        "push",
        &format!("{}:c", s(&lay)),
        "--artifact-type",
        "application/x",
        "--config",
        &format!("{}:application/vnd.example.config+json", s(&config)),
    ]);
}

/// inspect's Files lines are aligned as `ls -l` aligns: titles of different lengths, sizes
/// of different widths right-aligned, media types in one column.
#[test]
fn inspect_aligns_an_artifacts_files() {
    let dir = tempdir();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("a"), [0u8; 1]).unwrap();
    std::fs::write(work.join("sub/longer-name.bin"), [0u8; 3000]).unwrap();
    std::fs::write(work.join("m.dat"), vec![0u8; 1_600_000]).unwrap();
    let t = format!("{}:x", s(&dir.path().join("lay")));
    let r = std::process::Command::new(strata_bin())
        .args(["artifact", "push", &t, "--artifact-type", "application/x"])
        .args([
            "a",
            "sub/longer-name.bin",
            "m.dat:application/vnd.example.data",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = ok(&["inspect", &t]);
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Files:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let digest_at: Vec<usize> = lines.iter().map(|l| l.find("sha256:").unwrap()).collect();
    // Sizes end where media types start, two spaces before.
    let type_at: Vec<usize> = lines
        .iter()
        .map(|l| l.find("application/").unwrap())
        .collect();
    assert!(digest_at.iter().all(|&d| d == digest_at[0]), "{text}");
    assert!(type_at.iter().all(|&t| t == type_at[0]), "{text}");
    for (line, size) in lines.iter().zip(["1 B", "2.9 KiB", "1.5 MiB"]) {
        assert!(line[..type_at[0]].ends_with(&format!("{size}  ")), "{line}");
        assert_eq!(*line, line.trim_end(), "trailing blanks: {line:?}");
    }
}
