//! `strata insert`.

use std::path::{Path, PathBuf};

use strata::image::time::source_date_epoch;
use strata::layer::build::{TarOptions, TarWriter};
use strata::layer::names::whiteout_entry;
use strata::layer::source::SourceTree;
use strata::layer::write::{write_layer, write_layer_with_progress};

use super::build_args::LayerEditArgs;
use super::output::Output;
use super::Status;

/// Add one layer holding SRC (a file or a tree) at DEST in the image, or, with
/// --whiteout, deleting PATH.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// What to insert (a file or a directory).
    #[arg(required_unless_present = "whiteout")]
    src: Option<PathBuf>,
    /// Where it goes in the image, an absolute path; ending in `/`, SRC goes into that
    /// directory under its own name (as cp).
    #[arg(required_unless_present = "whiteout")]
    dest: Option<PathBuf>,
    /// Make DEST exactly SRC: a file (or symlink) may replace a directory the image has
    /// there, a directory a file, and a directory SRC hides what lower layers have under
    /// DEST (as --opaque). Without it, a directory SRC onto a directory merges with it (as
    /// umoci insert): files SRC lacks stay.
    #[arg(long, conflicts_with = "whiteout")]
    replace: bool,
    /// Delete this path in the image instead (a whiteout layer): an absolute path, as DEST.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["src", "dest", "opaque"])]
    whiteout: Option<PathBuf>,
    /// Hide what lower layers have under DEST (an opaque whiteout first); SRC must be a
    /// directory (a file at DEST hides everything below it anyway).
    #[arg(long)]
    opaque: bool,
    #[command(flatten)]
    ownership: super::build_args::OwnershipArgs,
    #[command(flatten)]
    edit: LayerEditArgs,
}

/// What a history entry records of a host path: its last component.
pub(super) fn host_name(path: &Path) -> &Path {
    path.file_name().map_or(path, Path::new)
}

/// Where SRC goes: DEST as given (absolute), or DEST/NAME when DEST ends in `/`.
fn destination(src: &Path, dest: &Path) -> anyhow::Result<PathBuf> {
    let text = dest.as_os_str().as_encoded_bytes();
    if !text.starts_with(b"/") {
        super::output::usage!("{}: DEST {}", dest.display(), absolute_hint(dest));
    }
    let into = if text.ends_with(b"/") {
        let name = src.file_name().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: names no file to put into {}",
                src.display(),
                dest.display()
            )
        })?;
        dest.join(name)
    } else {
        dest.to_path_buf()
    };
    // A name a layer cannot hold is a wrong value, as a relative DEST is.
    if into
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b".wh."))
    {
        super::output::usage!(
            "{}: a name starting with .wh. cannot be stored in a layer (it would read as a \
             whiteout)",
            dest.display()
        );
    }
    in_image(&into)
}

/// What a relative image path should have been, with an example only when the example
/// would itself be accepted (`../x` has no absolute spelling inside the image).
fn absolute_hint(path: &Path) -> String {
    let relative = path.strip_prefix(".").unwrap_or(path);
    if relative.as_os_str().is_empty() {
        "must be an absolute path in the image".into()
    } else if relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        "must be an absolute path in the image, with no .. components".into()
    } else {
        format!(
            "must be an absolute path in the image (e.g. /{})",
            relative.display()
        )
    }
}

/// An image path as a relative layer path; `/` itself is refused.
fn in_image(path: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => super::output::usage!(
                "{}: use a plain path inside the image (no ..)",
                path.display()
            ),
        }
    }
    if out.as_os_str().is_empty() {
        super::output::usage!("{}: the image root cannot be replaced", path.display());
    }
    Ok(out)
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    if let Some(target) = &args.whiteout {
        // PATH is an image path as DEST is, and checked by the rules unpack applies (strata
        // must not write a layer it refuses), before the layout is opened: a PATH that does
        // not pass is the invocation's fault.
        let text = target.as_os_str().as_encoded_bytes();
        if !text.starts_with(b"/") {
            super::output::usage!(
                "--whiteout {}: PATH {}",
                target.display(),
                absolute_hint(target)
            );
        }
        if let Err(reason) = whiteout_entry(target) {
            super::output::usage!("--whiteout {}: {reason}", target.display());
        }
    }
    // SRC's kind decides which flags make sense: read before the layout is opened, so a
    // wrong combination is refused before anything else is read (after REF's grammar).
    super::parse_reference(&args.reference)?;
    let checked = match (&args.src, &args.dest) {
        (Some(src), Some(dest)) if args.whiteout.is_none() => {
            let dest = destination(src, dest)?;
            let meta = std::fs::symlink_metadata(src).map_err(|source| strata::Error::Io {
                path: src.clone(),
                source,
            })?;
            // The opaque marker goes below DEST: an entry under a file or symlink is no tree.
            if args.opaque && !meta.is_dir() {
                super::output::usage!(
                    "{}: --opaque needs a directory to insert (this is not one; a symlink is \
                     stored as a symlink, not followed), and a file at DEST hides what was \
                     below it already",
                    src.display()
                );
            }
            Some((meta, dest))
        }
        _ => None,
    };
    let (mut draft, tag, compression) = args.edit.open(&args.reference)?;
    let layout = draft.layout().clone();
    let mut options = TarOptions {
        source_date_epoch: source_date_epoch()?,
        ..TarOptions::default()
    };
    args.ownership.apply(&mut options);
    let created_by;
    let layer = if let Some(target) = &args.whiteout {
        let target = in_image(target)?;
        created_by = format!("strata insert --whiteout /{}", target.display());
        write_layer(&layout, compression, move |w| {
            let mut tar = TarWriter::new(w, options);
            tar.add_whiteout(&target)?;
            tar.finish()?;
            Ok(())
        })?
    } else {
        let src = args.src.clone().expect("clap requires SRC");
        let (meta, dest) = checked.expect("clap requires SRC and DEST");
        use strata::image::tree::{Kind, Tree};
        // As unpack reads DEST: through the symlinks to directories lower layers made
        // (merged-/usr: /bin/sh is /usr/bin/sh under bin -> usr/bin).
        let into = args.dest.as_deref().expect("clap requires DEST");
        let into_dir = into.as_os_str().as_encoded_bytes().ends_with(b"/");
        let tree = if into_dir || !args.replace {
            Some(Tree::of(&layout, &draft.manifest)?)
        } else {
            None
        };
        let not_dir = |kind: Option<Kind>| matches!(kind, Some(k) if k != Kind::Directory && k != Kind::Symlink);
        // As cp: DEST/ names a directory to put SRC into, which a file cannot be.
        if let (true, Some(tree)) = (into_dir, &tree) {
            let dir = dest.parent().unwrap_or(Path::new(""));
            if !dir.as_os_str().is_empty() && not_dir(tree.kind_at(dir, true)?) {
                anyhow::bail!(
                    "/{}: not a directory in the image, so {} cannot go into it; name \
                     DEST without the trailing / to replace it",
                    dir.display(),
                    host_name(&src).display()
                );
            }
        }
        if let (false, Some(tree)) = (args.replace, &tree) {
            let kind = tree.kind_at(&dest, false)?;
            if !meta.is_dir() && kind == Some(Kind::Directory) {
                anyhow::bail!(
                    "/{}: the image has a directory there; end DEST with / to put {} into \
                     it, or give --replace to replace the directory",
                    dest.display(),
                    host_name(&src).display()
                );
            }
            // As cp, which will not put a directory over a file either.
            if meta.is_dir() && not_dir(kind) {
                anyhow::bail!(
                    "/{}: the image has a file there, which the directory {} would replace; \
                     give --replace to replace it",
                    dest.display(),
                    host_name(&src).display()
                );
            }
        }
        // The name only: a host path would make the same insert differ between machines.
        created_by = format!(
            "strata insert {} /{}",
            host_name(&src).display(),
            dest.display()
        );
        // --replace makes DEST exactly a directory SRC: what lower layers have under it goes.
        let opaque = args.opaque || (args.replace && meta.is_dir());
        // A directory is read as a tree of its own; anything else (a symlink too, which is
        // stored as it is) as one name in its parent.
        let (tree, rel) = if meta.is_dir() {
            (SourceTree::open(&src, false)?, PathBuf::new())
        } else {
            let name = src
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("{}: names no file", src.display()))?;
            let parent = src.parent().filter(|p| !p.as_os_str().is_empty());
            (
                SourceTree::open(parent.unwrap_or(Path::new(".")), true)?,
                PathBuf::from(name),
            )
        };
        let inner = if meta.is_dir() {
            tree.walk()?
        } else {
            Vec::new()
        };
        let mut bar = out.transfer_progress("insert");
        let layer =
            write_layer_with_progress(&layout, compression, &mut |n| bar.bytes(n), move |w| {
                let mut tar = TarWriter::new(w, options);
                let mut cursor = tree.cursor();
                tar.add_as(&mut cursor, &rel, &dest)?;
                if opaque {
                    tar.add_opaque(&dest)?;
                }
                for (inner, _) in &inner {
                    tar.add_as(&mut cursor, inner, &dest.join(inner))?;
                }
                tar.finish()?;
                Ok(())
            })?;
        bar.clear();
        layer
    };
    out.layer_written(&layer);
    draft.append_layer(&layer, &args.edit.image.history.options(), &created_by)?;
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(&tag, None)?;
    out.written(
        args.edit.image.json,
        &super::output::Written::tagged(layout.root(), &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}
