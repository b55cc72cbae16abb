//! The ownership record of a rootless unpack: an unprivileged user cannot chown, so the
//! owner a layer asks for is kept in an xattr, encoded as umoci and PRoot do so that their
//! tools (and `strata` building a layer back) read the same thing.

/// The xattr umoci (and PRoot) use to record ownership a rootless unpack could not set.
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";
/// "Leave this id alone" in [`ROOTLESS_XATTR`].
const NOOP_ID: u32 = u32::MAX;

/// The protobuf `Resource { uint32 uid = 1; uint32 gid = 2; }` umoci and PRoot use, with
/// 0 (the id the unpacking user already has) written as the no-op id.
pub fn rootless_xattr(uid: u32, gid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for (field, id) in [(1u8, uid), (2u8, gid)] {
        let id = if id == 0 { NOOP_ID } else { id };
        out.push(field << 3);
        let mut v = id;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_xattr_encoding() {
        assert_eq!(
            rootless_xattr(1000, 0),
            vec![0x08, 0xe8, 0x07, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
    }
}
