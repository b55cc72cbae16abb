//! `strata runtime-config`.

use std::io::Write;
use std::path::PathBuf;

use strata::bundle::idmap::IdMapping;
use strata::bundle::runtime::{runtime_config_of_image, RuntimeOptions};
use strata::image::resolve_image;
use strata::layout::LockMode;
use strata::Layout;

use super::output::Output;
use super::{PlatformArg, Status};

/// Write the OCI runtime config.json for an image without unpacking it (as `umoci raw
/// runtime-config`): users resolved against --rootfs, or the image's own /etc/passwd.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT:TAG, LAYOUT@DIGEST or LAYOUT.
    #[arg(value_name = "REF")]
    reference: String,
    /// The file to write, or - for stdout.
    file: String,
    /// Resolve the image's user against this rootfs's /etc/passwd and /etc/group instead
    /// of the image's own.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// A config for an unprivileged runtime (a user namespace mapping root to you).
    #[arg(long)]
    rootless: bool,
    /// Container-to-host uid mapping CONTAINER:HOST:SIZE (repeatable; ranges may not
    /// overlap, inside the container or on the host).
    #[arg(long, value_name = "C:H:N")]
    uid_map: Vec<IdMapping>,
    /// Container-to-host gid mapping CONTAINER:HOST:SIZE (repeatable; ranges may not
    /// overlap, inside the container or on the host).
    #[arg(long, value_name = "C:H:N")]
    gid_map: Vec<IdMapping>,
    #[command(flatten)]
    platform: PlatformArg,
}

pub fn run(args: Args, _out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let uid_map = super::values::id_map("--uid-map", args.uid_map)?;
    let gid_map = super::values::id_map("--gid-map", args.gid_map)?;
    let layout = Layout::open(&reference.layout)?;
    let resolved = resolve_image(&layout, &reference.target, &args.platform.resolve()?)?;
    let config = {
        let _lock = layout.lock_gc(LockMode::Shared)?;
        runtime_config_of_image(
            &layout,
            &resolved.manifest,
            args.rootfs.as_deref(),
            &RuntimeOptions {
                rootless: args.rootless,
                uid_map,
                gid_map,
            },
        )?
    };
    let mut bytes = serde_json::to_vec_pretty(&config)?;
    bytes.push(b'\n');
    if args.file == "-" {
        std::io::stdout().lock().write_all(&bytes)?;
    } else {
        let file = super::out_file::target(std::path::Path::new(&args.file))?;
        strata::transfer::check_archive_path(file.path(), &[&layout])?;
        super::out_file::write(&file, |w| Ok(w.write_all(&bytes)?))?;
    }
    Ok(Status::Success)
}
