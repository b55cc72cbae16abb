//! `strata man`: man pages generated from the argument definitions, so they never drift
//! from `--help` (a test compares them with the copies kept in `man/`), one page per command
//! at every depth, with the sections `--help` has no room for.

use std::path::PathBuf;

use anyhow::Context;
use roff::{bold, roman, Roff};

use super::output::Output;
use super::Status;

/// Write man pages (strata.1, strata-COMMAND.1, strata-COMMAND-SUBCOMMAND.1) into a
/// directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut root = super::command();
    // Building sets every subcommand's bin name ("strata artifact push"), which SYNOPSIS shows.
    root.build();
    let version = root.get_version().unwrap_or_default().to_owned();
    let mut pages = Vec::new();
    collect(&root, "strata", None, &version, &mut pages);
    for page in &pages {
        let path = args.dir.join(format!("{}.1", page.name));
        std::fs::write(&path, render(page, &pages, &version)?)
            .with_context(|| format!("writing {}", path.display()))?;
        out.info(format_args!("wrote {}", path.display()));
    }
    Ok(Status::Success)
}

struct Page {
    /// `strata-artifact-push`.
    name: String,
    parent: Option<String>,
    cmd: clap::Command,
}

/// Every command at every depth, named as its page (`strata-artifact-push`).
fn collect(
    cmd: &clap::Command,
    name: &str,
    parent: Option<&str>,
    version: &str,
    pages: &mut Vec<Page>,
) {
    pages.push(Page {
        name: name.to_owned(),
        parent: parent.map(str::to_owned),
        // The version shows in every page's VERSION section, but only `strata` takes -V.
        cmd: cmd
            .clone()
            .display_name(name.to_owned())
            .version(version.to_owned()),
    });
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        collect(sub, &sub_name, Some(name), version, pages);
    }
}

fn render(page: &Page, pages: &[Page], version: &str) -> anyhow::Result<Vec<u8>> {
    let (name, cmd) = (page.name.as_str(), &page.cmd);
    let man = clap_mangen::Man::new(cmd.clone()).source(format!("strata {version}"));
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut roff = Roff::default();
    section(&mut roff, "EXAMPLES");
    {
        for (what, command) in examples(name) {
            roff.control("TP", []).text([roman(*what)]);
            roff.control("nf", [])
                .text([bold(*command)])
                .control("fi", []);
        }
    }
    if takes_a_reference(cmd) {
        section(&mut roff, "REFERENCES");
        let has = |long: &str| cmd.get_arguments().any(|a| a.get_long() == Some(long));
        let mut text = vec![REFERENCE_GRAMMAR];
        text.extend(has("layout").then_some(REFERENCE_LAYOUT_FLAG));
        text.extend(super::platform_pick::takes(cmd).then_some(REFERENCE_PLATFORM));
        text.push(REFERENCE_TRANSPORTS);
        paragraphs(&mut roff, &text);
    }
    section(&mut roff, "EXIT STATUS");
    for (code, meaning) in EXIT_STATUS {
        roff.control("TP", [])
            .text([bold(*code)])
            .text([roman(*meaning)]);
    }
    let vars: Vec<&Variable> = ENVIRONMENT
        .iter()
        .filter(|v| page.parent.is_none() || (v.acts_on)(page))
        .collect();
    if !vars.is_empty() {
        section(&mut roff, "ENVIRONMENT");
        for var in vars {
            roff.control("TP", [])
                .text([bold(var.name)])
                .text([roman(var.meaning)]);
        }
    }
    section(&mut roff, "SEE ALSO");
    roff.text([roman(see_also(page, pages))]);
    roff.to_writer(&mut buf)?;
    man.render_version_section(&mut buf)?;
    Ok(once_preamble(&buf))
}

/// Each of clap_mangen's section renderers starts with the same two-line preamble (the
/// apostrophe string); a page needs it once, at the top.
fn once_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &[&str] = &[".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];
    let text = String::from_utf8_lossy(page);
    let mut seen = [false; 2];
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end_matches('\n');
        if let Some(i) = PREAMBLE.iter().position(|p| *p == trimmed) {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
        }
        out.push_str(line);
    }
    out.into_bytes()
}

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn paragraphs(roff: &mut Roff, text: &[&str]) {
    for (i, p) in text.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*p)]);
    }
}

/// Whether a command takes a REF argument: one whose value is shown as REF, SRCREF,
/// DSTREF or REFERENCE.
fn takes_a_reference(cmd: &clap::Command) -> bool {
    cmd.get_arguments()
        .filter(|a| a.get_action().takes_values())
        .flat_map(|a| a.get_value_names().unwrap_or_default())
        .any(|n| n.as_str().ends_with("REF") || n.as_str() == "REFERENCE")
}

/// The parent page, the pages of the subcommands, and strata(1) for every page.
fn see_also(page: &Page, pages: &[Page]) -> String {
    let mut refs: Vec<String> = Vec::new();
    if let Some(parent) = &page.parent {
        refs.push(format!("{parent}(1)"));
        if parent != "strata" {
            refs.push("strata(1)".into());
        }
    }
    refs.extend(
        pages
            .iter()
            .filter(|p| p.parent.as_deref() == Some(page.name.as_str()))
            .map(|p| format!("{}(1)", p.name)),
    );
    refs.push("umoci(1)".into());
    refs.push("skopeo(1)".into());
    refs.join(", ")
}

const REFERENCE_GRAMMAR: &str = "A REF is LAYOUT, LAYOUT:TAG or LAYOUT@ALG:HEX, split by its text \
     alone, never by what exists on disk. When an @ comes before the first : and the text \
     between them is a digest algorithm, the REF is LAYOUT@DIGEST (sha256 or sha512). \
     Otherwise the first : ends the layout and everything after it is the tag, colons and \
     slashes included: lay:docker.io/library/debian:12 is the tag docker.io/library/debian:12 \
     in lay. With no :, the REF names the layout's only image. Tags follow the image-spec's \
     ref.name grammar.";

const REFERENCE_LAYOUT_FLAG: &str = "A layout whose path holds a : is given with --layout \
     DIR; a REF with an empty layout part (:TAG, @sha256:HEX, or an empty string) then names \
     it.";

const REFERENCE_PLATFORM: &str = "Through an index, --platform OS/ARCH[/VARIANT] picks the \
     manifest (default: this machine's platform; the first match wins). A REF that names a \
     single image is used as it is: --platform has nothing to pick there, and a warning says \
     so when the image is of another platform.";

const REFERENCE_TRANSPORTS: &str = "skopeo's transport names (oci:, oci-archive:, docker:, \
     docker-archive:, ...) before the first : are refused unless a directory of that name \
     exists: oci:lay:app would otherwise be the tag lay:app of a layout oci. ./oci:app names a \
     layout called oci on purpose.";

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "The operation failed, or found a problem (fsck): a missing file, a blob that does \
         not verify, a refused layer. A layout is left as it was.",
    ),
    (
        "2",
        "The invocation or its values are wrong: an unknown flag, a tag or platform that does \
         not parse, a bad --clear field or time, a REF that names no image where one is \
         needed. Nothing is read or written.",
    ),
];

/// An environment variable and the commands it acts on: their pages list it, others not.
struct Variable {
    name: &'static str,
    meaning: &'static str,
    acts_on: fn(&Page) -> bool,
}

/// The pages of the commands that read SOURCE_DATE_EPOCH (image::time): those that write a
/// new image through a draft (its created and history times), those that write a layer
/// from files (mtimes clamped), artifact push and attach (a directory's tar) and export
/// (the archive's own mtimes).
const SOURCE_DATE_EPOCH_PAGES: &[&str] = &[
    "strata-new",
    "strata-build",
    "strata-config",
    "strata-add-layer",
    "strata-insert",
    "strata-flatten",
    "strata-rebase",
    "strata-repack",
    "strata-export",
    "strata-artifact-push",
    "strata-artifact-attach",
];

const ENVIRONMENT: &[Variable] = &[
    Variable {
        name: "SOURCE_DATE_EPOCH",
        meaning: "Seconds since 1970 (0 to 253402300799), for reproducible output: the \
             created and history times of what new, build, config, add-layer, insert, \
             flatten, rebase and repack write; the newest mtime kept in the layers build, \
             insert and repack write and in the tar of a directory artifact push or attach \
             stores; the mtime of export's archive entries (else 0). A value out of range \
             fails these commands (exit 2); other commands do not read it.",
        acts_on: |page| SOURCE_DATE_EPOCH_PAGES.contains(&page.name.as_str()),
    },
    Variable {
        name: "STRATA_THREADS",
        meaning: "Threads for compressing layers and hashing blobs, when --threads is not \
             given (a whole number, 1 to 1024); outputs do not depend on it. Read by the \
             commands that take --threads.",
        acts_on: |page| {
            page.cmd
                .get_arguments()
                .any(|a| a.get_long() == Some("threads"))
        },
    },
    Variable {
        name: "STRATA_RESOLVE",
        meaning: "userspace: resolve paths under a rootfs step by step instead of with \
             openat2 (for kernels or seccomp profiles without it); kernel, the default: \
             openat2 where the kernel has it. Any other value is refused. Read by unpack, \
             the one command that writes under a rootfs.",
        acts_on: |page| page.name == "strata-unpack",
    },
    Variable {
        name: "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY",
        meaning: "The proxy for registry requests (HTTP_PROXY with --plain-http, else \
             HTTPS_PROXY; ALL_PROXY for either) and the hosts reached without it; the lower \
             case names too. Read by the commands that reach a registry.",
        acts_on: reaches_a_registry,
    },
    Variable {
        name: "DOCKER_CONFIG, REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR",
        meaning: "Where credentials are kept, as docker and podman keep them: \
             $DOCKER_CONFIG/config.json (else ~/.docker/config.json), $REGISTRY_AUTH_FILE \
             and $XDG_RUNTIME_DIR/containers/auth.json. Read by the commands that reach a \
             registry, and by login and logout.",
        acts_on: |page| reaches_a_registry(page) || page.name == "strata-logout",
    },
];

/// Commands that talk to a registry take the flags that say how (--plain-http...).
fn reaches_a_registry(page: &Page) -> bool {
    page.cmd
        .get_arguments()
        .any(|a| a.get_long() == Some("plain-http"))
}

/// Examples per page, as (what it does, the commands, one a line). Every page has some; a
/// test parses every `strata` line with the CLI's own parser, so they follow the grammar.
fn examples(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "strata" => &[
            ("Build an image from a directory and unpack it as any user:", "strata build ./rootfs lay:app\nstrata unpack --rootless lay:app bundle"),
            ("Move an image across an air gap:", "strata export lay:app -o app.tar\nstrata import app.tar otherlay"),
        ],
        "strata-init" => &[("An empty layout:", "strata init lay")],
        "strata-ls" => &[
            ("Every entry, as text and as JSON:", "strata ls lay\nstrata ls lay --json"),
            ("A registry repository's tags:", "strata ls docker://registry.example/team/app"),
        ],
        "strata-inspect" => &[
            ("An image, and the exact stored manifest:", "strata inspect lay:app\nstrata inspect lay:app --raw manifest"),
            ("A layout whose path has a colon:", "strata inspect --layout ./my:lay :app"),
        ],
        "strata-tag" => &[("A second name for an image:", "strata tag lay:app v1.0")],
        "strata-untag" => &[("Remove a tag (the blobs stay until gc):", "strata untag lay:old\nstrata gc lay")],
        "strata-gc" => &[
            ("See what would go, then collect:", "strata gc lay --dry-run\nstrata gc lay"),
            ("Leave blobs another tool may still be writing:", "strata gc lay --min-age 1h"),
        ],
        "strata-fsck" => &[("Verify every blob and rule; or only hash the layers:", "strata fsck lay\nstrata fsck lay --no-layers --json")],
        "strata-unpack" => &[
            ("Unpack as root, or as any user:", "strata unpack lay:app bundle\nstrata unpack --rootless lay:app bundle"),
            ("Another platform's image, with container root mapped to uid 100000:", "strata unpack --platform linux/arm64 --uid-map 0:100000:65536 --gid-map 0:100000:65536 lay:app bundle"),
        ],
        "strata-new" => &[("An empty image to build on:", "strata new lay:scratch")],
        "strata-build" => &[
            ("A tree on a base image, reproducibly:", "SOURCE_DATE_EPOCH=0 strata build ./out lay:app --from lay:base --cmd /app"),
            ("The same digests for every user and umask:", "strata build --normalize-modes ./out lay:app"),
        ],
        "strata-config" => &[("Set the command and a variable, as a new tag:", "strata config lay:app --cmd /app --cmd serve --env PORT=8080 --expose 8080/tcp --tag app-2")],
        "strata-add-layer" => &[("Append a compressed tar, stored as given:", "strata add-layer lay:app extra.tar.gz --tag app-2")],
        "strata-insert" => &[
            ("A file into /etc, as cp would:", "strata insert lay:app ./motd /etc/"),
            ("Hide a file of the lower layers:", "strata insert lay:app --whiteout /etc/motd"),
        ],
        "strata-repack" => &[
            ("Unpack, change the rootfs, and commit it as a new layer:", "strata unpack lay:app b\necho hi > b/rootfs/etc/motd\nstrata repack b --tag app-2"),
        ],
        "strata-export" => &[
            ("An OCI archive, and one docker load reads:", "strata export lay:app -o app.tar\nstrata export lay:app -o app-docker.tar --format docker --repo-tag example/app:1"),
            ("Only what the other side lacks, with signatures:", "strata export lay:app --referrers --exclude-present-in mirror -o week.tar"),
            ("One image's merged filesystem:", "strata export lay:app --format rootfs -o rootfs.tar"),
        ],
        "strata-import" => &[("Any OCI or docker archive, checked first:", "strata import app.tar lay --dry-run\nstrata import app.tar lay")],
        "strata-copy" => &[
            ("An image and its signatures to another layout:", "strata copy lay:app other:app --referrers"),
            ("Every tag starting v1. to a mirror:", "strata copy lay mirror --tags 'v1\\..*'"),
        ],
        "strata-artifact" => &[
            ("An SBOM for an image, and its files back:", "strata artifact attach lay:app --artifact-type application/spdx+json sbom.json\nstrata artifact pull lay:sbom out/"),
        ],
        "strata-artifact-push" => &[
            ("An SBOM referring to an image:", "strata artifact push lay:sbom --artifact-type application/spdx+json --subject :app sbom.json"),
            ("A file with its media type, and a directory:", "strata artifact push lay:chart --artifact-type application/vnd.example.chart chart.yaml:application/yaml templates"),
        ],
        "strata-artifact-attach" => &[("A signature, kept untagged beside its image:", "strata artifact attach lay:app --artifact-type application/vnd.example.signature sig.json")],
        "strata-pull" => &[
            ("Debian for this machine, into a layout:", "strata pull debian:bookworm lay"),
            ("Every platform and the signatures, from a private registry:", "strata pull --all-platforms --referrers registry.example:5000/team/app:1 lay:app"),
        ],
        "strata-push" => &[
            ("An image to a registry, then nothing the second time:", "strata push lay:app registry.example:5000/team/app:1"),
            ("Through a private CA:", "strata push --cert-dir ca.pem lay:app registry.example/team/app:1"),
        ],
        "strata-login" => &[("Store credentials as docker does:", "strata login registry.example -u me --password-stdin < token.txt")],
        "strata-logout" => &[("Forget them:", "strata logout registry.example")],
        "strata-artifact-pull" => &[("An artifact's files into a directory:", "strata artifact pull lay:sbom out/")],
        "strata-referrers" => &[
            ("What refers to an image, of one type, as the referrers API's index:", "strata referrers lay:app\nstrata referrers lay:app --artifact-type application/spdx+json --json"),
        ],
        "strata-index" => &[
            ("A multi-platform index, then one platform more:", "strata index create lay:multi --manifest lay:app-amd64 --manifest lay:app-arm64\nstrata index add lay:multi --manifest lay:app-riscv64"),
        ],
        "strata-index-create" => &[("A multi-platform index:", "strata index create lay:multi --manifest lay:app-amd64 --manifest lay:app-arm64")],
        "strata-index-add" => &[("One platform more:", "strata index add lay:multi --manifest lay:app-riscv64")],
        "strata-index-remove" => &[("One platform less:", "strata index remove lay:multi --platform linux/arm64")],
        "strata-blob" => &[
            ("An image's config, and its lowest layer as stored:", "strata blob lay:app --config\nstrata blob lay:app --layer 0 > layer.tar.gz"),
            ("A file stored as a blob:", "strata blob put lay notes.txt --media-type text/plain"),
        ],
        "strata-blob-put" => &[("A file stored as a blob, its descriptor printed:", "strata blob put lay notes.txt --media-type text/plain")],
        "strata-cat" => &[("One file of an image, without unpacking:", "strata cat lay:app /etc/os-release")],
        "strata-files" => &[("What is under /etc, ls -l style:", "strata files lay:app /etc")],
        "strata-diff" => &[("What a rebuild changed:", "strata diff lay:app lay:app-2\nstrata diff lay:app lay:app-2 --json")],
        "strata-flatten" => &[("One layer, zstd-compressed:", "strata flatten lay:app --tag app-flat --compress zstd")],
        "strata-rebase" => &[("An image moved onto a patched base:", "strata rebase lay:app --old-base lay:base --new-base lay:base-patched --tag app-patched")],
        "strata-convert" => &[
            ("Layers recompressed, or switched to Docker media types:", "strata convert lay:app --compress zstd --tag app-zstd\nstrata convert lay:app --format docker --tag app-docker"),
        ],
        "strata-runtime-config" => &[("The config.json unpack would write, to stdout:", "strata runtime-config lay:app -")],
        "strata-manifest" => &[("A hand-written manifest, tagged:", "strata manifest put lay:hand manifest.json")],
        "strata-manifest-put" => &[("A hand-written manifest, tagged:", "strata manifest put lay:hand manifest.json")],
        "strata-man" => &[("Every page, where man finds them:", "strata man /usr/local/share/man/man1")],
        "strata-completions" => &[
            ("A static bash script, and the dynamic one that knows tags:", "strata completions bash > /etc/bash_completion.d/strata\nsource <(COMPLETE=bash strata)"),
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    /// The words of each `strata` command in an example: shell operators end it, leading
    /// `NAME=VALUE` assignments are dropped, single quotes removed, other lines (`echo`,
    /// `source`) are skipped.
    fn strata_commands(example: &str) -> Vec<Vec<&str>> {
        let mut found = Vec::new();
        for line in example.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for segment in words.split(|w| ["|", "&&", "||", ";"].contains(w)) {
                let start = segment
                    .iter()
                    .position(|w| !w.contains('=') || w.starts_with('-'));
                let Some(start) = start else { continue };
                if segment[start] != "strata" {
                    continue;
                }
                let command: Vec<&str> = segment[start..]
                    .iter()
                    .copied()
                    .take_while(|w| !w.starts_with(['>', '<']))
                    .map(|w| w.trim_matches('\''))
                    .collect();
                found.push(command);
            }
        }
        found
    }

    #[test]
    fn every_page_has_examples_that_parse() {
        let mut root = super::super::command();
        root.build();
        let mut pages = Vec::new();
        super::collect(&root, "strata", None, "0", &mut pages);
        assert!(pages.len() >= 40, "{}", pages.len());
        for page in &pages {
            let examples = super::examples(&page.name);
            assert!(!examples.is_empty(), "{} has no examples", page.name);
            let mut commands = 0;
            for (_, example) in examples {
                for words in strata_commands(example) {
                    let mut parser = super::super::shared::before_command(
                        <super::super::Cli as clap::CommandFactory>::command(),
                    );
                    let matches = parser
                        .try_get_matches_from_mut(&words)
                        .unwrap_or_else(|e| panic!("{}: {words:?}: {e}", page.name));
                    super::super::Cli::from_arg_matches(&matches)
                        .unwrap_or_else(|e| panic!("{}: {words:?}: {e}", page.name));
                    super::super::shared::read(&mut parser, &matches)
                        .unwrap_or_else(|e| panic!("{}: {words:?}: {e}", page.name));
                    commands += 1;
                }
            }
            // A page's examples show its own command (`strata artifact push ...` on
            // strata-artifact-push(1)).
            let own = page
                .name
                .trim_start_matches("strata")
                .trim_start_matches('-');
            let shows_own = examples.iter().any(|(_, e)| {
                strata_commands(e).iter().any(|w| {
                    let typed = w[1..].join("-");
                    typed == own || typed.starts_with(&format!("{own}-")) || own.is_empty()
                })
            });
            assert!(commands > 0 && shows_own, "{}: {examples:?}", page.name);
        }
    }
}
