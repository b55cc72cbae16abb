//! The fuzz corpus as a test: every input the fuzzers kept (`fuzz/corpus/<target>`) and every
//! crash they once found (`fuzz/regressions/<target>`) is replayed through the same checks
//! the fuzz targets make (`fuzz/harness.rs`), on stable Rust, in every `cargo test`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/harness.rs"]
mod harness;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("reading the corpus").path()));
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`, and names every input that failed.
fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no corpus for {target} under fuzz/: was it deleted?"
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("reading a corpus file");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs broke a promise (see the panics above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn applying_fuzzed_layers_never_touches_the_surroundings() {
    replay("apply_layers", harness::apply_layers);
}

#[test]
fn importing_fuzzed_archives_changes_nothing_or_leaves_a_sound_layout() {
    replay("import_archive", harness::import_archive);
}

#[test]
fn fuzzed_documents_and_names_never_panic() {
    replay("documents", harness::documents);
}
