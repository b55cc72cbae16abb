//! `--platform` picks a manifest out of an index; given for a REF that names one image, it
//! has nothing to pick from. The command goes on with that image (as crane and skopeo use
//! a single manifest whatever the platform asked for, so scripts that pass --platform for
//! every layout keep working), and the user is told, once for every command that takes the
//! flag, rather than finding an amd64 rootfs where arm64 was asked for.

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::output::Output;

/// The id of `--platform` ([`super::PlatformArg`]).
const ID: &str = "platform";

/// The value names of the arguments `--platform` picks through: the images a command reads.
const READ: &[&str] = &["REF", "SRCREF", "BASEREF", "REFERENCE"];

/// Whether the command takes the `--platform` that picks out of an index. `index remove`'s
/// names the entries to remove: required, as a pick (which defaults to this machine's
/// platform) never is.
pub fn takes(cmd: &clap::Command) -> bool {
    cmd.get_arguments()
        .any(|a| a.get_id() == ID && !a.is_required_set())
}

/// Warns for each REF of the chosen command that names a single image of another platform
/// than the one `--platform` gave. Anything that does not resolve is left to the command,
/// which says so in its own words.
pub fn warn_unpicked(
    cmd: &clap::Command,
    matches: &ArgMatches,
    default_layout: Option<&std::path::Path>,
    out: &Output,
) {
    if !takes(cmd) || matches.value_source(ID) != Some(ValueSource::CommandLine) {
        return;
    }
    let Some(Ok(wanted)) = matches
        .get_one::<String>(ID)
        .map(|p| p.parse::<strata::image::PlatformSpec>())
    else {
        return;
    };
    for text in read_references(cmd, matches) {
        if let Some(actual) = single_image_platform(&text, default_layout, &wanted) {
            if !wanted.matches(&actual) {
                out.warn(format_args!(
                    "{text} is a single {actual} image: --platform {wanted} picks only out of \
                     an index"
                ));
            }
        }
    }
}

/// The REFs the command reads. A command that also takes a base (build) or a subject
/// (artifact push) writes its REFERENCE: --platform picks through those instead.
fn read_references(cmd: &clap::Command, matches: &ArgMatches) -> Vec<String> {
    let names = |a: &clap::Arg| {
        a.get_value_names()
            .unwrap_or_default()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let writes_reference = cmd
        .get_arguments()
        .any(|a| names(a).iter().any(|n| n == "BASEREF") || a.get_long() == Some("subject"));
    let mut found = Vec::new();
    for arg in cmd.get_arguments() {
        let read = names(arg)
            .iter()
            .any(|n| READ.contains(&n.as_str()) && !(writes_reference && n == "REFERENCE"));
        if !read {
            continue;
        }
        if let Ok(Some(values)) = matches.try_get_raw(arg.get_id().as_str()) {
            found.extend(values.map(|v| v.to_string_lossy().into_owned()));
        }
    }
    found
}

/// The platform of the image `text` names when it names one image manifest directly (no
/// index on the way), read from its config.
fn single_image_platform(
    text: &str,
    default_layout: Option<&std::path::Path>,
    wanted: &strata::image::PlatformSpec,
) -> Option<strata::spec::Platform> {
    use strata::spec::Kind;
    let reference = strata::layout::reference::Reference::parse_in(text, default_layout).ok()?;
    let layout = strata::Layout::open(&reference.layout).ok()?;
    let resolved = strata::image::resolve_image(&layout, &reference.target, wanted).ok()?;
    if !resolved.indexes.is_empty()
        || Kind::of(&resolved.manifest.config.media_type) != Kind::Config
    {
        return None;
    }
    let (_, config) = layout.read_config(&resolved.manifest.config).ok()?;
    Some(strata::spec::Platform {
        architecture: config.architecture,
        os: config.os,
        variant: config.variant,
        ..Default::default()
    })
}
