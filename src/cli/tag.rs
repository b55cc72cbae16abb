//! `strata tag`.

use strata::Layout;

use super::output::Output;
use super::Status;

/// Give an image another tag (moving the tag if it named another image).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT, LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The new tag (org.opencontainers.image.ref.name grammar).
    #[arg(value_parser = super::values::tag)]
    new_tag: String,
    #[command(flatten)]
    json: super::JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    let tagged = strata::image::tag(&layout, &reference.target, &args.new_tag)?;
    out.info(format_args!(
        "tagged {} as {}",
        tagged.entry.digest, args.new_tag
    ));
    // `tag lay:v1 other:v1` reads like a copy to the layout `other`; it is a tag with a
    // colon in `lay`. Said when `other` is a layout, where the mistake is likely.
    if let Some((before, _)) = args.new_tag.split_once(':') {
        if std::path::Path::new(before).join("oci-layout").is_file() {
            out.warn(format_args!(
                "the tag {:?} is in {}; to copy the image into the layout {before}, use \
                 strata copy",
                args.new_tag,
                reference.layout.display()
            ));
        }
    }
    out.written(
        args.json,
        &super::output::Written::tagged(&reference.layout, &tagged, None),
    )?;
    Ok(Status::Success)
}
