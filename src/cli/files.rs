//! `strata cat` and `strata files`: one file's bytes, or the merged tree, read from an
//! image's layers without unpacking.

use std::path::PathBuf;

use strata::image::resolve_image;
use strata::image::tree::{Kind, Node, Tree};
use strata::layout::LockMode;
use strata::Layout;

use super::output::Output;
use super::{JsonArg, PlatformArg, Status};

/// Print a file of an image (whiteouts honoured, symlinks followed inside the image),
/// verified, without unpacking.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct CatArgs {
    /// The image: LAYOUT:TAG, LAYOUT@DIGEST or LAYOUT.
    #[arg(value_name = "REF")]
    reference: String,
    /// The file, as a path in the image (/etc/os-release).
    path: PathBuf,
    #[command(flatten)]
    platform: PlatformArg,
}

/// List an image's merged filesystem (or what is under PATH), `ls -l` style, without
/// unpacking.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct FilesArgs {
    /// The image: LAYOUT:TAG, LAYOUT@DIGEST or LAYOUT.
    #[arg(value_name = "REF")]
    reference: String,
    /// Only this directory (or file) and what is below it.
    path: Option<PathBuf>,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: JsonArg,
}

fn tree_of(reference: &str, platform: &PlatformArg) -> anyhow::Result<(Layout, Tree)> {
    let reference = super::parse_reference(reference)?;
    let layout = Layout::open(&reference.layout)?;
    let resolved = resolve_image(&layout, &reference.target, &platform.resolve()?)?;
    let tree = {
        let _lock = layout.lock_gc(LockMode::Shared)?;
        Tree::of(&layout, &resolved.manifest)?
    };
    Ok((layout, tree))
}

pub fn cat(args: CatArgs, _out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    let resolved = resolve_image(&layout, &reference.target, &args.platform.resolve()?)?;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut stdout = std::io::stdout().lock();
    // Always through the merged tree (kept in the layer cache): a quick read of the top
    // layers alone could not know a path's directories below, and printed files that a
    // symlinked directory replaced or whited out above had sent elsewhere.
    let tree = Tree::of(&layout, &resolved.manifest)?;
    tree.cat(&layout, &args.path, &mut stdout)?;
    Ok(Status::Success)
}

pub fn files(args: FilesArgs, out: &Output) -> anyhow::Result<Status> {
    let (_layout, tree) = tree_of(&args.reference, &args.platform)?;
    let below = match &args.path {
        None => PathBuf::new(),
        // Followed as `ls` follows a path; a symlink that leads nowhere is listed itself.
        Some(p) => match tree.resolve(p)? {
            Some(found) => found,
            None => tree
                .find_entry(p)?
                .filter(|entry| tree.nodes.contains_key(entry))
                .ok_or_else(|| strata::Error::Invalid {
                    what: p.display().to_string(),
                    reason: "no such path in the image".into(),
                })?,
        },
    };
    let listed = tree
        .nodes
        .range(below.clone()..)
        .take_while(|(p, _)| p.starts_with(&below))
        .filter(|(p, _)| !p.as_os_str().is_empty());
    if args.json.json {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            path: String,
            #[serde(flatten)]
            node: &'a Node,
        }
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            files: Vec<Entry<'a>>,
        }
        let files = listed
            .map(|(p, node)| Entry {
                path: format!("/{}", p.display()),
                node,
            })
            .collect();
        out.json(&Listing { files })?;
        return Ok(Status::Success);
    }
    for (path, node) in listed {
        let link = node
            .link
            .as_deref()
            .map(|l| format!(" -> {}", String::from_utf8_lossy(l)))
            .unwrap_or_default();
        out.line(format_args!(
            "{} {:>5}/{:<5} {:>10} /{}{}{link}",
            mode_string(node),
            node.uid,
            node.gid,
            node.size,
            path.display(),
            if node.kind == Kind::Directory {
                "/"
            } else {
                ""
            },
        ))?;
    }
    Ok(Status::Success)
}

/// `drwxr-xr-x`, with s/S and t/T where setuid, setgid or sticky are set.
fn mode_string(node: &Node) -> String {
    let kind = match node.kind {
        Kind::Directory => 'd',
        Kind::File => '-',
        Kind::Symlink => 'l',
        Kind::CharDevice => 'c',
        Kind::BlockDevice => 'b',
        Kind::Fifo => 'p',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let special = |exec: bool, set: bool, lower: char, upper: char| match (exec, set) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    format!(
        "{kind}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(m & 0o100 != 0, m & 0o4000 != 0, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(m & 0o010 != 0, m & 0o2000 != 0, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(m & 0o001 != 0, m & 0o1000 != 0, 't', 'T'),
    )
}

/// Show what differs between two images' filesystems (paths added, removed and changed:
/// type, content, mode, owner, link target, device, xattrs), read from their layers without
/// unpacking.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct DiffArgs {
    /// The first image.
    #[arg(value_name = "REF")]
    first: String,
    /// The second image.
    #[arg(value_name = "REF")]
    second: String,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn diff(args: DiffArgs, out: &Output) -> anyhow::Result<Status> {
    let open = |text: &str| -> anyhow::Result<(Layout, strata::spec::Manifest)> {
        let reference = super::parse_reference(text)?;
        let layout = Layout::open(&reference.layout)?;
        let resolved = resolve_image(&layout, &reference.target, &args.platform.resolve()?)?;
        Ok((layout, resolved.manifest))
    };
    let (first, second) = (open(&args.first)?, open(&args.second)?);
    let _locks = (
        first.0.lock_gc(LockMode::Shared)?,
        second.0.lock_gc(LockMode::Shared)?,
    );
    let (one, two) = Tree::hashed_pair((&first.0, &first.1), (&second.0, &second.1))?;
    let report = strata::image::tree::diff(&one, &two);
    if args.json.json {
        out.json(&report)?;
    } else {
        for p in &report.added {
            out.line(format_args!("A {p}"))?;
        }
        for p in &report.removed {
            out.line(format_args!("D {p}"))?;
        }
        for c in &report.changed {
            out.line(format_args!("M {} ({})", c.path, c.what.join(", ")))?;
        }
    }
    Ok(Status::Success)
}
