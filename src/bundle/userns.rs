//! Letting an unprivileged repack read what the rootfs's owner cannot: images ship
//! `/etc/shadow` with mode 000 and directories without `r` or `x`, and a rootless unpack
//! keeps those modes. Changing them to read and back would move ctimes, which repack's
//! snapshot relies on. Instead the process enters a user namespace that maps its own uid and
//! gid to themselves: there it holds capabilities over inodes whose owner is mapped, that
//! is, over its own files and nobody else's, so its own mode-000 entries open without any
//! change to them. umoci chmods instead (its `unpriv` package).

use std::io;

use rustix::process::{getegid, geteuid};
use rustix::thread::UnshareFlags;

/// Moves this process into a new user namespace mapping the effective uid and gid to
/// themselves. Does nothing for root (who needs none). It must be called while the process
/// has one thread (the kernel refuses otherwise) and affects the whole process for the rest
/// of its life: meant for a command-line tool about to repack, not for a library's callers
/// in general. Fails where unprivileged user namespaces are disabled.
pub fn enter_own_user_namespace() -> io::Result<bool> {
    let (uid, gid) = (geteuid(), getegid());
    if uid.is_root() {
        return Ok(false);
    }
    // Once unshared there is no way back, and a namespace without maps leaves the process
    // unable to create files: make sure the maps can be written before.
    for map in [
        "/proc/self/uid_map",
        "/proc/self/gid_map",
        "/proc/self/setgroups",
    ] {
        std::fs::metadata(map)?;
    }
    // One of the crate's two unsafe calls (the other: ioext's sync_file_range). SAFETY:
    // rustix marks unshare unsafe for FILES, which splits the fd table between threads;
    // NEWUSER leaves it as it is, and the kernel refuses NEWUSER in a process with more than
    // one thread.
    #[allow(unsafe_code)]
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }?;
    // An unprivileged process may write gid_map only once setgroups is denied.
    std::fs::write("/proc/self/setgroups", "deny")?;
    let (uid, gid) = (uid.as_raw(), gid.as_raw());
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(true)
}
