//! Completion of REF arguments at TAB time (clap_complete's dynamic completion): directories
//! before the `:`, the layout's tags after it. Completion runs on every TAB, so it reads
//! only, and a layout it cannot read gives no candidates rather than an error.

use std::ffi::OsStr;
use std::path::Path;

use clap_complete::engine::{
    ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};

/// The value names of arguments that take a REF.
const REF_VALUE_NAMES: &[&str] = &["REF", "SRCREF", "DSTREF", "BASEREF", "REFERENCE"];

/// Attaches the REF completer to every REF argument of `cmd` and its subcommands, so the
/// Args structs need not each name it.
pub fn attach(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|arg| {
        let takes_ref = arg
            .get_value_names()
            .is_some_and(|names| names.iter().any(|n| REF_VALUE_NAMES.contains(&n.as_str())));
        if takes_ref {
            arg.add(ArgValueCompleter::new(complete))
        } else {
            arg
        }
    });
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    subcommands
        .iter()
        .fold(cmd, |cmd, name| cmd.mut_subcommand(name, attach))
}

/// The candidates for a REF being typed. With `--layout DIR` on the line, a REF with an
/// empty layout part names DIR, so `:TAG` completes from DIR's tags (a bare `TAG` would name
/// a layout of that name).
fn complete(current: &OsStr) -> Vec<CompletionCandidate> {
    let given = layout_given().or_else(layout_of_an_earlier_ref);
    match (
        current.to_str().and_then(|text| text.split_once(':')),
        &given,
    ) {
        (Some(("", prefix)), Some(dir)) => tags(dir, "", prefix),
        (Some((layout, prefix)), _) => tags(Path::new(layout), layout, prefix),
        (None, Some(dir)) if current.is_empty() => {
            let mut all = tags(dir, "", "");
            all.extend(directories(current));
            all
        }
        (None, _) => directories(current),
    }
}

/// The `--layout DIR` of the command line being completed, read from the words the shell
/// passed (after `--`; the completer is given only the word being typed). The last word is
/// that one, never a value already given.
fn layout_given() -> Option<std::path::PathBuf> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let start = args.iter().position(|a| a == "--")? + 1;
    let words = &args[start..args.len().saturating_sub(1).max(start)];
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if word == "--" {
            break;
        }
        if word == "--layout" {
            found = words.get(i + 1).cloned();
        } else if let Some(dir) = word.to_str().and_then(|w| w.strip_prefix("--layout=")) {
            found = Some(dir.into());
        }
    }
    found.filter(|d| !d.is_empty()).map(Into::into)
}

/// The layout of the first REF already on the line (`artifact push L:x --subject :`,
/// `index create L:i --manifest :`), which is where an empty layout part points for those
/// options; only a directory that is a layout counts.
fn layout_of_an_earlier_ref() -> Option<std::path::PathBuf> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let start = args.iter().position(|a| a == "--")? + 1;
    let words = &args[start..args.len().saturating_sub(1).max(start)];
    words.iter().find_map(|word| {
        let (layout, _) = word.to_str()?.split_once([':', '@'])?;
        let layout = Path::new(layout);
        (!layout.as_os_str().is_empty() && layout.join("oci-layout").is_file())
            .then(|| layout.to_owned())
    })
}

/// Directories, and `DIR:` for each that is an OCI layout (the usual next step is a tag).
fn directories(current: &OsStr) -> Vec<CompletionCandidate> {
    let dirs = PathCompleter::dir().complete(current);
    let mut layouts = Vec::new();
    // The text itself may already name a layout (`lay` before `lay/` was offered).
    if let Some(text) = current.to_str() {
        if !text.is_empty() && !text.ends_with('/') && is_layout(Path::new(text)) {
            layouts.push(CompletionCandidate::new(format!("{text}:")));
        }
    }
    for dir in &dirs {
        let Some(text) = dir.get_value().to_str() else {
            continue;
        };
        let bare = text.trim_end_matches('/');
        if !bare.is_empty() && bare != "." && is_layout(Path::new(bare)) {
            layouts.push(CompletionCandidate::new(format!("{bare}:")));
        }
    }
    layouts.sort();
    layouts.dedup();
    layouts.into_iter().chain(dirs).collect()
}

/// Cheap test for "is an OCI layout" (every TAB runs it on each listed directory): the
/// marker file only; the tags are read, checked, only once a `:` is typed.
fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file()
}

/// `SHOWN:TAG` for the tags in `layout`'s index.json starting with `prefix`, `shown` being
/// the layout as typed (empty for `--layout`'s).
fn tags(layout: &Path, shown: &str, prefix: &str) -> Vec<CompletionCandidate> {
    // `LAYOUT@sha256:...` is a digest being typed: nothing to offer.
    let digest_typed = shown.rsplit_once('@').is_some_and(|(_, alg)| {
        !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
    });
    if layout.as_os_str().is_empty() || digest_typed {
        return Vec::new();
    }
    let Ok(index) = strata::Layout::open(layout).and_then(|l| l.read_index()) else {
        return Vec::new();
    };
    let mut names: Vec<&str> = index
        .index
        .manifests
        .iter()
        .filter_map(|d| d.ref_name())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| CompletionCandidate::new(format!("{shown}:{name}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every REF argument, however deep its subcommand, gets the completer.
    #[test]
    fn every_ref_argument_has_the_completer() {
        fn walk(cmd: &clap::Command, found: &mut usize) {
            for arg in cmd.get_arguments() {
                let takes_ref = arg
                    .get_value_names()
                    .is_some_and(|n| n.iter().any(|n| REF_VALUE_NAMES.contains(&n.as_str())));
                assert_eq!(
                    takes_ref,
                    arg.get::<ArgValueCompleter>().is_some(),
                    "{} {}",
                    cmd.get_name(),
                    arg.get_id()
                );
                *found += usize::from(takes_ref);
            }
            for sub in cmd.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut found = 0;
        walk(&crate::cli::command(), &mut found);
        // init, ls, inspect, tag (2), untag, unpack, new, build (2), config, add-layer,
        // insert, repack, export, copy (2), artifact, referrers, index: at least these.
        assert!(found >= 20, "only {found} REF arguments");
    }
}
