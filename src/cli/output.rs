//! The output layer: results to stdout (text or one JSON document), logs to stderr, and the
//! mapping of outcomes to exit codes. A closed stdout (`strata ls | head`) is not an error.

use std::cell::RefCell;
use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

use super::JsonArg;

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran but found a problem (e.g. fsck).
    Failure,
}

/// An invocation error found after argument parsing (a REF's grammar, flags that do not go
/// together, a missing tag): exit 2, as clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns early with a [`Usage`] error.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::output::Usage(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// Text for a terminal: messages quote paths, tags and labels that images and registries
/// chose, whose control characters could forge lines or drive the terminal.
fn shown(text: impl std::fmt::Display) -> String {
    strata::words::printable(&text.to_string(), usize::MAX)
}

/// Exit codes: 0 success, 1 the operation failed or found a problem, 2 the invocation or
/// its values are wrong.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    let invocation = e.chain().any(|c| {
        c.is::<Usage>()
            || matches!(
                c.downcast_ref::<strata::Error>(),
                Some(strata::Error::NoImageNamed(_) | strata::Error::BadSetting { .. })
            )
    });
    if invocation {
        2
    } else {
        1
    }
}

/// Where a command prints.
pub struct Output {
    /// How many `-v`s: 1 adds a line per layer or blob, 2 more detail where it is cheap.
    verbosity: u8,
    quiet: bool,
    /// Whether the command takes `--platform`: only then does an error end by naming it.
    platform_flag: bool,
    stdout: RefCell<io::BufWriter<io::Stdout>>,
}

/// The version of every `--json` document's shape.
const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(flatten)]
    body: &'a T,
}

impl Output {
    /// How many `-v`s were given.
    pub fn verbosity(&self) -> u8 {
        self.verbosity
    }

    pub fn new(verbosity: u8, quiet: bool) -> Output {
        Output {
            verbosity,
            quiet,
            platform_flag: false,
            stdout: RefCell::new(io::BufWriter::new(io::stdout())),
        }
    }

    /// Says that the command takes `--platform`, which an error picking a platform then
    /// names.
    pub fn with_platform_flag(mut self, takes: bool) -> Output {
        self.platform_flag = takes;
        self
    }

    /// Writes result text to stdout.
    pub fn print(&self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.stdout.borrow_mut(), "{text}")
    }

    /// A line of text on stdout holding what an image, archive or registry chose (paths,
    /// labels, titles...): control characters are escaped, as they could forge lines or
    /// drive the terminal.
    pub fn line(&self, text: impl std::fmt::Display) -> io::Result<()> {
        self.print(shown(text))
    }

    /// Writes exact bytes to stdout.
    pub fn raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.stdout.borrow_mut().write_all(bytes)
    }

    /// Writes `body` as one JSON document with a schema version.
    pub fn json<T: Serialize>(&self, body: &T) -> io::Result<()> {
        let mut out = self.stdout.borrow_mut();
        serde_json::to_writer_pretty(
            &mut *out,
            &Envelope {
                schema_version: JSON_SCHEMA_VERSION,
                body,
            },
        )?;
        writeln!(out)
    }

    /// A progress or detail line on stderr, shown with `-v`: what is being done, one line
    /// per layer or blob.
    pub fn info(&self, text: impl std::fmt::Display) {
        if self.verbosity >= 1 {
            eprintln!("strata: {}", shown(text));
        }
    }

    /// A finer line on stderr, shown with `-vv`.
    pub fn detail(&self, text: impl std::fmt::Display) {
        if self.verbosity >= 2 {
            eprintln!("strata: {}", shown(text));
        }
    }

    /// A command's closing summary on stdout, which `-q` leaves out (the exit status and
    /// the result lines say it all).
    pub fn summary(&self, text: impl std::fmt::Display) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.print(text)
    }

    /// A line about what happened (a summary), on stderr so that stdout holds only
    /// results; hidden with `--quiet`.
    pub fn note(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("strata: {}", shown(text));
        }
    }

    /// A warning on stderr, hidden with `--quiet`.
    pub fn warn(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("strata: warning: {}", shown(text));
        }
    }

    /// Flushes stdout and turns the outcome into an exit code.
    pub fn finish(self, result: anyhow::Result<Status>) -> ExitCode {
        let flushed = self.stdout.into_inner().flush();
        let result = result.and_then(|s| flushed.map(|()| s).map_err(Into::into));
        match result {
            Ok(Status::Success) => ExitCode::SUCCESS,
            Ok(Status::Failure) => ExitCode::from(1),
            Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "strata: error: {}",
                    shown(render_chain(&e, self.platform_flag))
                );
                ExitCode::from(exit_code_of(&e))
            }
        }
    }
}

/// An I/O error on a file strata keeps in a layout's `.strata-tmp` (a blob being written, a
/// staging layout) is the layout's: a full disk is said of the layout the user named, not
/// of a temp name they never chose.
fn in_layout_temp(e: &anyhow::Error) -> Option<String> {
    let io = e.chain().find_map(|c| {
        let error = c.downcast_ref::<strata::Error>().or_else(|| {
            match c.downcast_ref::<strata::transfer::Error>() {
                Some(strata::transfer::Error::Layout(error)) => Some(error),
                _ => None,
            }
        });
        match error {
            Some(strata::Error::Io { path, source }) => Some((path, source)),
            _ => None,
        }
    })?;
    let (path, source) = io;
    let at = path
        .components()
        .position(|c| c.as_os_str() == strata::layout::TMP_DIR)?;
    let layout: std::path::PathBuf = path.components().take(at).collect();
    if layout.as_os_str().is_empty() {
        return None;
    }
    // A staging layout that could not be made inside it said so: the layout is what failed.
    let reason = strata::words::io_reason(source);
    let reason = reason
        .strip_prefix("cannot be created: ")
        .unwrap_or(&reason);
    Some(format!(
        "{}: writing into the layout: {reason}",
        layout.display()
    ))
}

/// The error and its causes, each once: library errors already show their cause in their
/// own message, so a cause is added only when it says something new.
fn render_chain(e: &anyhow::Error, platform_flag: bool) -> String {
    let said_of_layout = in_layout_temp(e);
    let causes = if said_of_layout.is_some() {
        0
    } else {
        usize::MAX
    };
    let mut message = said_of_layout.unwrap_or_else(|| e.to_string());
    for cause in e.chain().skip(1).take(causes) {
        // The library words a missing path as "does not exist"; say it so for errors from
        // elsewhere too, and once.
        let text = match cause.downcast_ref::<io::Error>() {
            Some(io) => strata::words::io_reason(io),
            None => cause.to_string(),
        };
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    if let Some(hint) = e.chain().find_map(|c| flag_hint(c, platform_flag)) {
        message.push_str("; ");
        message.push_str(hint);
    }
    message
}

/// The flag a library error is about: the library speaks of choices, only the CLI knows
/// their spelling.
fn flag_hint(
    cause: &(dyn std::error::Error + 'static),
    platform_flag: bool,
) -> Option<&'static str> {
    use strata::transfer::Error as Transfer;
    let library = match cause.downcast_ref::<Transfer>() {
        Some(Transfer::TagsExist { .. }) => return Some("give --force"),
        Some(Transfer::OneTagForMany { .. }) => {
            return Some("--tag is for an archive of one image")
        }
        Some(Transfer::Layout(e)) => e,
        _ => cause.downcast_ref::<strata::Error>()?,
    };
    match library {
        strata::Error::ChoiceNeeded { choice, .. } => Some(match choice {
            strata::Choice::Tag => "give --tag",
            strata::Choice::Overwrite => "give --overwrite",
            strata::Choice::Rootless => "give --rootless",
            strata::Choice::Platform => "give --platform",
            _ => return None,
        }),
        // The platforms there are, listed in the error, are what --platform takes.
        strata::Error::NoPlatform { .. } if platform_flag => Some("give --platform"),
        _ => None,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// What a writer made or named: printed as its digest, or with `--json` as this document
/// (the same shape for every writer).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written<'a> {
    /// The layout written to.
    pub layout: String,
    /// The tag that names it now; none for untagged entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<&'a str>,
    pub digest: &'a str,
    pub media_type: &'a str,
    pub size: i64,
    /// The image the tag named before, when the tag moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<&'a str>,
    /// The image the command read and wrote anew: a tag moving off it is the edit itself,
    /// not news.
    #[serde(skip)]
    pub source: Option<&'a str>,
}

impl<'a> Written<'a> {
    pub fn new(
        layout: &std::path::Path,
        tag: Option<&'a str>,
        desc: &'a strata::spec::Descriptor,
    ) -> Written<'a> {
        Written {
            layout: layout.display().to_string(),
            tag,
            digest: &desc.digest,
            media_type: &desc.media_type,
            size: desc.size,
            moved_from: None,
            source: None,
        }
    }

    /// What a writer tagged: the entry, and the image the tag named before when it moved
    /// off another one than `source`, the image the command edited.
    pub fn tagged(
        layout: &std::path::Path,
        tagged: &'a strata::image::Tagged,
        source: Option<&'a str>,
    ) -> Written<'a> {
        Written {
            moved_from: tagged.moved_from.as_deref(),
            source,
            ..Written::new(layout, tagged.entry.ref_name(), &tagged.entry)
        }
    }
}

impl Output {
    /// Prints what a writer made: its digest, or the document with `--json`.
    pub fn written(&self, json: JsonArg, written: &Written<'_>) -> io::Result<()> {
        if let (Some(before), Some(tag)) = (written.moved_from, written.tag) {
            if written.source != Some(before) {
                self.warn(format_args!(
                    "moved tag {tag} from {before} to {}",
                    written.digest
                ));
            }
        }
        if json.json {
            self.json(written)
        } else {
            self.print(written.digest)
        }
    }
}

impl Output {
    /// `-v`'s line for the layer a writer made: its blob, size and compression; `-vv` adds
    /// its diff_id.
    pub fn layer_written(&self, layer: &strata::layer::write::WrittenLayer) {
        self.info(format_args!(
            "layer {} written: {}, {}",
            layer.blob.digest,
            size_and_bytes(layer.blob.size),
            layer.media_type
        ));
        self.detail(format_args!("layer diff_id {}", layer.diff_id));
    }
}

/// An image as the transfer commands list it: digest, then tag or `(untagged)`.
pub fn image_line(digest: &str, tag: Option<&str>) -> String {
    format!("{digest} {}", tag.unwrap_or("(untagged)"))
}

pub use strata::words::plural;

/// Rows as lines of columns two spaces apart, each column as wide as its widest cell, as
/// `ls -l` aligns them: left-aligned, or right-aligned where `right[i]` (numbers, sizes).
/// The last column is not padded, so lines carry no trailing blanks.
pub fn aligned(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c] - cell.chars().count();
                let last = c + 1 == row.len();
                if right.get(c).copied().unwrap_or(false) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if !last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            line
        })
        .collect()
}

/// A size for people, then exact: "1.5 KiB (1536 bytes)", "1 B (1 byte)".
pub fn size_and_bytes(bytes: u64) -> String {
    format!("{} ({})", human_size(bytes), strata::words::bytes(bytes))
}

/// Human-readable byte counts.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A one-line progress display on stderr for an unpack, layer by layer, drawn only when
/// stderr is a terminal.
pub struct Progress {
    enabled: bool,
    label: String,
    total: u64,
    layer_start: std::time::Instant,
    /// `-v`: a line per layer as it ends, terminal or not.
    per_layer: bool,
    /// The layer being unpacked: its digest, for its closing line.
    digest: Option<String>,
    /// `layer N/COUNT`.
    position: String,
    /// `-vv`: a line per entry applied.
    per_entry: bool,
    /// Entries of the current layer applied so far.
    entries: u64,
}

impl Output {
    /// A progress display (silent unless stderr is a terminal and not `--quiet`).
    pub fn progress(&self) -> Progress {
        use std::io::IsTerminal;
        Progress {
            enabled: !self.quiet && io::stderr().is_terminal(),
            label: String::new(),
            total: 0,
            layer_start: std::time::Instant::now(),
            per_layer: self.verbosity >= 1,
            digest: None,
            position: String::new(),
            per_entry: self.verbosity >= 2,
            entries: 0,
        }
    }
}

impl Progress {
    /// A new layer starts.
    pub fn layer(&mut self, index: usize, count: usize, digest: &str, size: u64) {
        self.layer_done();
        self.digest = Some(digest.to_owned());
        self.entries = 0;
        self.position = format!("layer {}/{count}", index + 1);
        self.label = format!("{} {}", self.position, &digest[..digest.len().min(19)]);
        self.total = size;
        self.layer_start = std::time::Instant::now();
        self.bytes(0);
    }

    /// Bytes of the current layer read so far.
    pub fn bytes(&mut self, done: u64) {
        if self.enabled {
            let p = strata::transfer::Progress {
                done,
                total: Some(self.total),
            };
            let line = transfer_line(&self.label, p, self.layer_start.elapsed().as_secs_f64());
            eprint!("\r\x1b[2K{line}");
        }
    }

    /// An entry of the current layer is applied.
    pub fn entry(&mut self, path: &str) {
        self.entries += 1;
        if self.per_entry {
            if self.enabled {
                eprint!("\r\x1b[2K");
            }
            eprintln!("strata:   {path}");
        }
    }

    /// Clears the line.
    pub fn done(&mut self) {
        self.layer_done();
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }

    /// `-v`'s line for the layer that just ended.
    fn layer_done(&mut self) {
        let Some(digest) = self.digest.take() else {
            return;
        };
        if self.per_layer {
            if self.enabled {
                eprint!("\r\x1b[2K");
            }
            let secs = self.layer_start.elapsed().as_secs_f64();
            eprintln!(
                "strata: {}",
                layer_line(&self.position, &digest, self.total, self.entries, secs)
            );
        }
    }
}

/// `-v`'s line for one unpacked layer: which, its digest, its size and the time it took.
fn layer_line(label: &str, digest: &str, size: u64, entries: u64, secs: f64) -> String {
    format!(
        "{label} {digest} {}, {} in {secs:.2}s",
        human_size(size),
        plural(entries as usize, "entry", "entries")
    )
}

impl Progress {}

/// A one-line progress display on stderr for transfers: bytes, rate and time left. Drawn
/// only on a terminal and never with `-q`.
pub struct TransferProgress {
    enabled: bool,
    /// `-v`: a line per blob.
    per_blob: bool,
    label: &'static str,
    start: std::time::Instant,
    drawn: bool,
}

impl Output {
    /// A transfer progress line (silent unless stderr is a terminal and not `--quiet`).
    pub fn transfer_progress(&self, label: &'static str) -> TransferProgress {
        use std::io::IsTerminal;
        TransferProgress {
            enabled: !self.quiet && io::stderr().is_terminal(),
            per_blob: self.verbosity >= 1,
            label,
            start: std::time::Instant::now(),
            drawn: false,
        }
    }
}

/// One transfer progress line: label, a bar and percentage when the total is known, bytes,
/// rate and time left. The rate is shown only after a fifth of a second: before that it is
/// noise.
fn transfer_line(label: &str, p: strata::transfer::Progress, secs: f64) -> String {
    const WIDTH: u64 = 24;
    let rate = if secs > 0.2 {
        p.done as f64 / secs
    } else {
        0.0
    };
    let mut line = label.to_owned();
    match p.total {
        Some(total) => {
            let done = p.done.min(total);
            let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            line.push_str(&format!(
                " [{}{}] {pct:>3}%  {} / {}",
                "#".repeat(filled as usize),
                "-".repeat((WIDTH - filled) as usize),
                human_size(done),
                human_size(total)
            ));
            if rate > 0.0 && total > done {
                let eta = ((total - done) as f64 / rate).ceil() as u64;
                line.push_str(&format!("  ETA {}:{:02}", eta / 60, eta % 60));
            }
        }
        None => line.push_str(&format!("  {}", human_size(p.done))),
    }
    if rate > 0.0 {
        line.push_str(&format!("  {}/s", human_size(rate as u64)));
    }
    line
}

/// A line left drawn when a command fails would run into its error message.
impl Drop for TransferProgress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `-v`'s line for one blob a transfer moved.
fn blob_line(label: &str, name: &str, size: u64, how: &str) -> String {
    format!("{label}: {name} {how} ({})", human_size(size))
}

impl TransferProgress {
    /// What a transfer reports: the bar moves; with `-v`, each blob done gets a line above it.
    pub fn event(&mut self, event: strata::transfer::Event<'_>) {
        match event {
            strata::transfer::Event::Progress(p) => self.update(p),
            strata::transfer::Event::Blob { name, size, how } if self.per_blob => {
                let drawn = self.drawn;
                self.clear();
                eprintln!("strata: {}", blob_line(self.label, name, size, how));
                self.drawn = drawn;
            }
            strata::transfer::Event::Blob { .. } => {}
        }
    }

    /// Bytes done of a work whose total is not known (a layer's tar as it is compressed).
    pub fn bytes(&mut self, done: u64) {
        self.update(strata::transfer::Progress { done, total: None });
    }

    pub fn update(&mut self, p: strata::transfer::Progress) {
        if !self.enabled {
            return;
        }
        let line = transfer_line(self.label, p, self.start.elapsed().as_secs_f64());
        eprint!("\r\x1b[2K{line}");
        self.drawn = true;
    }

    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata::transfer::Progress;

    /// gc, inspect and the -v lines of the writers show sizes this way.
    #[test]
    fn sizes_agree_with_their_count() {
        assert_eq!(size_and_bytes(1), "1 B (1 byte)");
        assert_eq!(size_and_bytes(0), "0 B (0 bytes)");
        assert_eq!(size_and_bytes(1536), "1.5 KiB (1536 bytes)");
    }

    #[test]
    fn transfer_line_shows_bar_bytes_rate_and_time_left() {
        let mib = 1 << 20;
        let p = Progress {
            done: 25 * mib,
            total: Some(100 * mib),
        };
        assert_eq!(
            transfer_line("import", p, 5.0),
            "import [######------------------]  25%  25.0 MiB / 100.0 MiB  ETA 0:15  5.0 MiB/s"
        );
        // No rate in the first moments, no time left once done, no bar without a total.
        assert_eq!(
            transfer_line("copy", p, 0.1),
            "copy [######------------------]  25%  25.0 MiB / 100.0 MiB"
        );
        let done = Progress {
            done: 100 * mib,
            total: Some(100 * mib),
        };
        assert!(transfer_line("copy", done, 2.0).contains("[########################] 100%"));
        assert!(!transfer_line("copy", done, 2.0).contains("ETA"));
        let open = Progress {
            done: 3 * mib,
            total: None,
        };
        assert_eq!(
            transfer_line("import", open, 1.0),
            "import  3.0 MiB  3.0 MiB/s"
        );
        // An empty transfer is complete, not a division by zero.
        let empty = Progress {
            done: 0,
            total: Some(0),
        };
        assert!(transfer_line("copy", empty, 1.0).contains("100%"));
    }

    #[test]
    fn a_layer_being_compressed_shows_bytes_and_rate_without_a_bar() {
        let p = Progress {
            done: 6 << 20,
            total: None,
        };
        assert_eq!(transfer_line("build", p, 2.0), "build  6.0 MiB  3.0 MiB/s");
    }

    #[test]
    fn per_layer_and_per_blob_lines_name_digest_size_and_time() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            layer_line("layer 2/3", &digest, 3 << 20, 1, 0.25),
            format!("layer 2/3 {digest} 3.0 MiB, 1 entry in 0.25s")
        );
        assert_eq!(
            blob_line("copy", &digest, 10, "linked"),
            format!("copy: {digest} linked (10 B)")
        );
    }
}
