//! Creating a layout so that neither a failure nor a kill leaves a directory on which every
//! later command fails:
//!
//! - A missing layout is built whole (`oci-layout`, `index.json`, `blobs/`, and any missing
//!   parent directories) in a temp directory beside its first missing ancestor, then renamed
//!   into place without replacing anything: at every moment the path is either absent or a
//!   complete, empty layout. A kill before the rename leaves only that hidden temp
//!   directory, which the next creation beside it removes once its maker is dead.
//! - An empty directory that was given cannot be swapped for a new one (it is the user's,
//!   with its owner and mode), so the layout is made inside it; a kill meanwhile leaves a
//!   skeleton without `oci-layout`, which the next creation recognises (nothing in it but
//!   what a creation writes) and completes.
//! - [`Creation::discard`] takes back, after a failure, only what was created, and only
//!   while the layout is still empty.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use super::{sync_dir, Layout, TMP_DIR};
use crate::error::{Error, IoContext, Result};
use crate::ioext::NAME_MAX;
use crate::spec::{to_canonical_json, Index};

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Made {
    /// Nothing: the layout existed.
    Nothing,
    /// The directory `top` (the layout or its first missing ancestor) and all below it.
    Dir(PathBuf),
    /// The layout's files inside a directory that existed (empty, or with a skeleton).
    Files,
}

/// A layout opened or created, which remembers what it created so that a command that
/// fails can take it back ([`Creation::discard`]).
#[derive(Debug)]
#[must_use = "a creation that is dropped on failure leaves its layout behind"]
pub struct Creation {
    layout: Layout,
    made: Made,
}

/// What an existing path may be taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Any layout (opened), or a new one.
    Any,
    /// A new, empty layout: an existing one only if it is still empty (a retry of a
    /// creation that was killed after its last step must succeed).
    Empty,
}

/// Marks the temp directories a creation builds in: `.NAME.strata-new.PID.NONCE`.
const TEMP_MARK: &str = ".strata-new.";

impl Layout {
    /// Creates a new, empty layout at `path` (with any missing parents), crash-safely (see
    /// the module docs). A directory that is already an empty layout is accepted, so that
    /// running a killed creation again succeeds; any other non-empty directory is refused.
    pub fn create(path: impl AsRef<Path>) -> Result<Creation> {
        Creation::make(path.as_ref(), Want::Empty)
    }

    /// [`Layout::create`], for callers that will never take the layout back.
    pub fn init(path: impl AsRef<Path>) -> Result<Layout> {
        Ok(Self::create(path)?.into_layout())
    }

    /// Opens the layout at `path`, or creates it when `path` does not exist, is an empty
    /// directory, or holds only the skeleton a killed creation left.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Creation> {
        Creation::make(path.as_ref(), Want::Any)
    }
}

impl Creation {
    fn make(path: &Path, want: Want) -> Result<Creation> {
        // Twice at most: a creation that loses a race to another one opens what it made.
        for _ in 0..2 {
            if let Some(made) = existing(path, want)? {
                return Ok(made);
            }
            if let Some(made) = create_missing(path)? {
                return Ok(made);
            }
        }
        existing(path, want)?.ok_or_else(|| Error::BadLayout {
            path: path.to_owned(),
            reason: "cannot create a layout here: it keeps disappearing".into(),
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The layout, to keep whatever happens.
    pub fn into_layout(self) -> Layout {
        self.layout
    }

    /// True when this call created the layout (or completed one a killed strata left).
    pub fn created(&self) -> bool {
        self.made != Made::Nothing
    }

    /// Takes back what was created, after a failure or a dry run: the directories made, or
    /// the files made inside a directory that was given. Best effort, and nothing at all if
    /// the layout has meanwhile gained an image (another process is using it).
    pub fn discard(self) {
        let in_use = self
            .layout
            .read_index()
            .map_or(true, |i| !i.index.manifests.is_empty());
        if in_use {
            return;
        }
        match &self.made {
            Made::Nothing => {}
            Made::Dir(top) => {
                let root = self.layout.root();
                let _ = fs::remove_dir_all(root);
                // The parents it made only while empty: another process may have put
                // something of its own beside the layout meanwhile.
                for dir in root.ancestors().skip(1) {
                    if !dir.starts_with(top) || fs::remove_dir(dir).is_err() {
                        break;
                    }
                }
            }
            Made::Files => clear(self.layout.root()),
        }
    }

    /// Passes `result` on, after taking back what was created when it is an error: a
    /// command that fails leaves the file system as it found it.
    pub fn settle<T, E>(self, result: std::result::Result<T, E>) -> std::result::Result<T, E> {
        if result.is_err() {
            self.discard();
        }
        result
    }
}

/// Removes the files a creation makes inside a directory that was given.
fn clear(root: &Path) {
    let _ = fs::remove_file(root.join("oci-layout"));
    let _ = fs::remove_file(root.join("index.json"));
    let _ = fs::remove_dir_all(root.join("blobs"));
    let _ = fs::remove_dir_all(root.join(TMP_DIR));
}

/// The layout when `path` exists: opened, or made inside an empty directory or over a
/// killed creation's skeleton. `None` when `path` does not exist.
fn existing(path: &Path, want: Want) -> Result<Option<Creation>> {
    let opened = |path: &Path| {
        Ok(Some(Creation {
            layout: Layout::open(path)?,
            made: Made::Nothing,
        }))
    };
    if !path.exists() {
        if fs::symlink_metadata(path).is_ok() {
            // A dangling symlink: Layout::open names it.
            return Layout::open(path).map(|_| None);
        }
        return Ok(None);
    }
    let not_empty = || {
        Err(Error::BadLayout {
            path: path.to_owned(),
            reason: "refusing to create a layout: the directory is not empty".into(),
        })
    };
    if !path.is_dir() {
        return match want {
            Want::Any => opened(path),
            Want::Empty => Err(Error::BadLayout {
                path: path.to_owned(),
                reason: "refusing to create a layout: not a directory".into(),
            }),
        };
    }
    if path.join("oci-layout").exists() {
        if want == Want::Empty && !is_skeleton(path)? {
            return not_empty();
        }
        return opened(path);
    }
    if !is_skeleton(path)? {
        return match want {
            Want::Any => opened(path),
            Want::Empty => not_empty(),
        };
    }
    if let Err(e) = fill(path) {
        clear(path);
        return Err(e);
    }
    Ok(Some(Creation {
        layout: Layout::open(path)?,
        made: Made::Files,
    }))
}

/// Writes a layout's files into the directory `root`, which holds nothing or a skeleton:
/// `oci-layout` last, so that a directory without it is never taken for a finished layout.
fn fill(root: &Path) -> Result<()> {
    let layout = Layout {
        root: root.to_owned(),
    };
    let sha256 = layout.blobs_dir().join("sha256");
    fs::create_dir_all(&sha256).at(&sha256)?;
    layout.write_file_atomically("index.json", &to_canonical_json(&Index::empty()))?;
    layout.write_file_atomically("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    // Nobody else can be using a layout this young: leave no temp dir behind. A killed
    // creation's temp files in it go too (is_skeleton made sure they are only those).
    let _ = fs::remove_dir_all(root.join(TMP_DIR));
    Ok(())
}

/// Builds the layout in a temp directory beside `path`'s first missing ancestor and
/// renames it into place. `None` when something appeared at that place meanwhile.
fn create_missing(path: &Path) -> Result<Option<Creation>> {
    let (parent, top_name, below) = first_missing(path)?;
    sweep_stale(&parent, &top_name);
    let temp = make_temp_dir(&parent, &top_name)?;
    let built = (|| {
        let mut inner = temp.clone();
        for part in &below {
            inner.push(part);
        }
        fs::create_dir_all(&inner).at(&inner)?;
        fill(&inner)?;
        fsync_tree(&temp, &below)
    })()
    // The temp directory is the tool's business: a full disk is said of the layout asked for.
    .map_err(|e| match e {
        // Paths made absolute on the way (tempfile's) hold the temp directory's name too.
        Error::Io { path: at, source }
            if at.starts_with(&temp)
                || temp.file_name().is_some_and(|n| at.iter().any(|c| c == n)) =>
        {
            Error::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    source.kind(),
                    format!("cannot be created: {}", crate::words::io_reason(&source)),
                ),
            }
        }
        other => other,
    });
    let top = parent.join(&top_name);
    let renamed = built.and_then(|()| rename_no_replace(&temp, &top));
    match renamed {
        Ok(true) => {}
        Ok(false) => {
            let _ = fs::remove_dir_all(&temp);
            return Ok(None);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&temp);
            return Err(e);
        }
    }
    let made = Creation {
        layout: Layout {
            root: path.to_owned(),
        },
        made: Made::Dir(top),
    };
    // A failure from here on takes the new layout back, as any failure of a creation does.
    if let Err(e) = sync_dir(&parent) {
        made.discard();
        return Err(e);
    }
    Ok(Some(made))
}

/// Splits a missing `path` into its nearest existing ancestor, the first missing component
/// under it, and the components below that.
fn first_missing(path: &Path) -> Result<(PathBuf, OsString, Vec<OsString>)> {
    let mut below: Vec<OsString> = Vec::new();
    let mut at = path.to_owned();
    loop {
        let name = at
            .file_name()
            .map(OsStr::to_owned)
            .ok_or_else(|| Error::BadLayout {
                path: path.to_owned(),
                reason: "cannot create a layout here: the path has no name to create".into(),
            })?;
        let parent = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if name.len() > NAME_MAX {
            // Said up front: the temp directory's longer name would fail first, and the
            // error would name it instead of what the caller asked for.
            return Err(crate::ioext::name_too_long(&at, &name));
        }
        if parent.exists() {
            if !parent.is_dir() {
                return Err(Error::BadLayout {
                    path: path.to_owned(),
                    reason: format!(
                        "cannot create a layout here: {} is not a directory",
                        parent.display()
                    ),
                });
            }
            below.reverse();
            return Ok((parent, name, below));
        }
        below.push(name);
        at = parent;
    }
}

/// A new directory in `parent` named for `name`, this process and a nonce (mode from the
/// umask, as a plain `mkdir` would give the layout).
fn make_temp_dir(parent: &Path, name: &OsStr) -> Result<PathBuf> {
    let pid = std::process::id();
    let mut last = None;
    for attempt in 0..16u32 {
        let nonce = nonce(attempt);
        let mut temp_name = temp_prefix(name);
        temp_name.push(format!("{pid}.{nonce:x}"));
        let temp = parent.join(temp_name);
        match fs::create_dir(&temp) {
            Ok(()) => return Ok(temp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            // The directory the caller named, not the temp name it never asked for.
            Err(e) => return Err(e).at(parent),
        }
    }
    Err(last.expect("16 attempts")).at(parent)
}

/// `.NAME.strata-new.` for the temp directories of a creation of `name`, with NAME cut so
/// that the whole temp name (pid and nonce added) stays within [`NAME_MAX`].
fn temp_prefix(name: &OsStr) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    // ".", the mark, a 10-digit pid, ".", a 16-digit nonce.
    const ROOM: usize = NAME_MAX - 1 - TEMP_MARK.len() - 10 - 1 - 16;
    let bytes = name.as_bytes();
    let mut prefix = OsString::from(".");
    prefix.push(OsStr::from_bytes(&bytes[..bytes.len().min(ROOM)]));
    prefix.push(TEMP_MARK);
    prefix
}

fn nonce(attempt: u32) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(attempt) << 48)
}

/// Removes the temp directories that killed creations of `name` left in `parent`: only
/// those whose maker (by the pid in the name) is no longer running.
fn sweep_stale(parent: &Path, name: &OsStr) {
    let prefix = temp_prefix(name).to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let dead = rest
            .split_once('.')
            .is_some_and(|(pid, _)| super::process_is_gone(pid));
        if dead && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes the new directories durable before they are renamed into view.
fn fsync_tree(temp: &Path, below: &[OsString]) -> Result<()> {
    let mut dir = temp.to_owned();
    sync_dir(&dir)?;
    for part in below {
        dir.push(part);
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Renames `from` to `to` unless something is at `to`: false then.
fn rename_no_replace(from: &Path, to: &Path) -> Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        // File systems without RENAME_NOREPLACE: the check and the rename are two steps,
        // and rename replaces only an empty directory, so the race loses nothing.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Ok(false);
            }
            fs::rename(from, to).at(to)?;
            Ok(true)
        }
        Err(e) => Err(std::io::Error::from(e)).at(to),
    }
}

/// True when `dir` holds nothing but what a creation writes: empty algorithm directories
/// under `blobs/`, an `index.json` listing nothing, temp files in `.strata-tmp/`, and
/// `oci-layout` (whose content `Layout::open` checks). An empty directory is a skeleton too.
fn is_skeleton(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let kind = entry.file_type().at(&path)?;
        let ok = match entry.file_name().to_str() {
            Some("blobs") if kind.is_dir() => only_empty_dirs(&path)?,
            Some("index.json") if kind.is_file() => lists_nothing(&path),
            Some("oci-layout") => kind.is_file(),
            Some(TMP_DIR) if kind.is_dir() => only_init_temp_files(&path)?,
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn only_empty_dirs(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let is_empty_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && fs::read_dir(&path).at(&path)?.next().is_none();
        if !is_empty_dir {
            return Ok(false);
        }
    }
    Ok(true)
}

fn lists_nothing(path: &Path) -> bool {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<crate::spec::Index>(&bytes).ok())
        .is_some_and(|index| index.manifests.is_empty())
}

/// The temp files `Layout::write_file_atomically` leaves when killed before its rename.
fn only_init_temp_files(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with("index.json-") || name.starts_with("oci-layout-");
        if !ours || !entry.file_type().at(entry.path())?.is_file() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_missing_splits_at_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let (parent, top, below) = first_missing(&dir.path().join("a/b/c")).unwrap();
        assert_eq!(parent, dir.path());
        assert_eq!(top, "a");
        assert_eq!(below, [OsString::from("b"), OsString::from("c")]);
    }

    #[test]
    fn a_skeleton_is_only_what_init_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_skeleton(dir.path()).unwrap());
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        fs::write(
            dir.path().join("index.json"),
            crate::spec::to_canonical_json(&crate::spec::Index::empty()),
        )
        .unwrap();
        assert!(is_skeleton(dir.path()).unwrap());
        fs::write(dir.path().join("blobs/sha256/x"), b"x").unwrap();
        assert!(!is_skeleton(dir.path()).unwrap());
        fs::remove_file(dir.path().join("blobs/sha256/x")).unwrap();
        fs::write(dir.path().join("mine"), b"x").unwrap();
        assert!(!is_skeleton(dir.path()).unwrap());
    }

    #[test]
    fn discard_takes_back_the_made_parents_but_not_what_appeared_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let made = Layout::open_or_create(dir.path().join("a/b/lay")).unwrap();
        assert!(made.created());
        fs::write(dir.path().join("a/theirs"), b"x").unwrap();
        made.discard();
        assert!(!dir.path().join("a/b").exists());
        assert!(dir.path().join("a/theirs").exists());

        let made = Layout::create(dir.path().join("c/d/lay")).unwrap();
        made.discard();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_stale_temp_dir_of_a_dead_maker_is_swept_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7fff_fff0 is beyond any pid_max, so no such process runs.
        let dead = dir.path().join(".lay.strata-new.2147483632.1");
        let live = dir
            .path()
            .join(format!(".lay.strata-new.{}.1", std::process::id()));
        let other = dir.path().join(".other.strata-new.2147483632.1");
        for d in [&dead, &live, &other] {
            fs::create_dir_all(d.join("blobs")).unwrap();
        }
        sweep_stale(dir.path(), OsStr::new("lay"));
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
