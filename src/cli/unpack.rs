//! `strata unpack`.

use std::path::PathBuf;

use strata::bundle::idmap::{IdMap, IdMapping};
use strata::bundle::unpack::{unpack, Progress, UnpackOptions};

use super::output::Output;
use super::{JsonArg, PlatformArg, Status};

/// Unpack an image into a runtime bundle (BUNDLE/rootfs, BUNDLE/config.json and strata's
/// metadata), verifying every layer and applying whiteouts as the image-spec says.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT, LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The bundle directory to create (or an existing empty one).
    bundle: PathBuf,
    #[command(flatten)]
    platform: PlatformArg,
    /// Unpack as an unprivileged user: ownership is recorded in the user.rootlesscontainers
    /// xattr and device nodes become empty files.
    #[arg(long)]
    rootless: bool,
    /// Map container uids to host uids, CONTAINER:HOST:SIZE (repeatable; ranges may not
    /// overlap, inside the container or on the host).
    #[arg(long = "uid-map", value_name = "C:H:N")]
    uid_map: Vec<IdMapping>,
    /// Map container gids to host gids, CONTAINER:HOST:SIZE (repeatable; ranges may not
    /// overlap, inside the container or on the host).
    #[arg(long = "gid-map", value_name = "C:H:N")]
    gid_map: Vec<IdMapping>,
    /// Keep a symlink where a layer has a directory, when it leads to a directory inside the
    /// rootfs (e.g. /lib64 -> usr/lib64).
    #[arg(long)]
    keep_dirlinks: bool,
    /// Write only the rootfs, into BUNDLE (created if missing, or an existing empty
    /// directory).
    #[arg(long)]
    rootfs_only: bool,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    // Read once at start for the library; checked where it acts, here: a typo would
    // otherwise leave the kernel's resolution in use without a word.
    let setting = std::env::var_os("STRATA_RESOLVE");
    if let Some(value) = setting.filter(|v| v != "userspace" && v != "kernel") {
        super::output::usage!(
            "STRATA_RESOLVE: {:?} is not a setting (userspace or kernel, or leave it unset)",
            value.to_string_lossy()
        );
    }
    let reference = super::parse_reference(&args.reference)?;
    let mut uid_map = super::values::id_map("--uid-map", args.uid_map)?;
    let mut gid_map = super::values::id_map("--gid-map", args.gid_map)?;
    if args.rootless {
        // A rootless unpack is owned by whoever runs it: container root is that user.
        if uid_map.is_identity() {
            uid_map = IdMap(vec![IdMapping {
                container_id: 0,
                host_id: rustix::process::geteuid().as_raw(),
                size: 1,
            }]);
        }
        if gid_map.is_identity() {
            gid_map = IdMap(vec![IdMapping {
                container_id: 0,
                host_id: rustix::process::getegid().as_raw(),
                size: 1,
            }]);
        }
    }
    let options = UnpackOptions {
        platform: args.platform.resolve()?,
        rootless: args.rootless,
        uid_map,
        gid_map,
        keep_dirlinks: args.keep_dirlinks,
        rootfs_only: args.rootfs_only,
    };
    let mut progress = out.progress();
    let report = unpack(&reference, &args.bundle, &options, &mut |p| match p {
        Progress::Layer(i, n, desc) => progress.layer(i, n, &desc.digest, desc.size.max(0) as u64),
        Progress::Bytes(b) => progress.bytes(b),
        Progress::Entry(path) => progress.entry(path),
    })?;
    progress.done();
    out.info(format_args!(
        "paths under the rootfs resolved by {}",
        strata::layer::path_resolution()
    ));
    for w in &report.warnings {
        out.warn(w);
    }
    if args.json.json {
        out.json(&report)?;
    } else {
        out.info(format_args!(
            "unpacked {} ({}, {}) into {}",
            report.manifest,
            super::output::plural(report.layers, "layer", "layers"),
            super::output::plural(report.entries as usize, "entry", "entries"),
            args.bundle.display()
        ));
    }
    Ok(Status::Success)
}
