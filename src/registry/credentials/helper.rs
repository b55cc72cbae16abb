//! Docker credential helpers (`docker-credential-<name>`): programs that keep secrets in a
//! keychain and answer `get`, `store` and `erase` over stdin/stdout. Their stdout may carry a
//! secret (a `get` answer, or an error that echoes input), so it never reaches an error.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Credential, CredentialError};

/// How long a helper may take before it is killed: a keychain prompt waits for a human,
/// but a hung helper must not hang strata.
pub(super) const TIMEOUT: Duration = Duration::from_secs(60);

/// The user name with which helpers mark the secret as an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// What helpers print (on stdout, exit 1) when they hold nothing for the server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// Fixed complaints of docker-credential-helpers' protocol: safe to show, as they quote
/// nothing.
const KNOWN_COMPLAINTS: [&str; 2] = ["no credentials server URL", "no credentials username"];

/// Largest answer read from a helper; a credential is a few kilobytes at most.
const STDOUT_LIMIT: usize = 1 << 20;

/// Most of a helper's stderr kept for an error message.
const STDERR_LIMIT: usize = 2048;

/// A helper program, found.
#[derive(Debug)]
pub(super) struct Helper {
    program: PathBuf,
    timeout: Duration,
}

/// What a helper run produced.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Helper {
    /// `docker-credential-<name>` in the first of `dirs` holding it as an executable file.
    /// Relative directories (an empty `$PATH` entry means ".") are skipped: a helper is
    /// handed secrets, and must not be whatever the working directory holds.
    pub(super) fn find(
        name: &str,
        dirs: &[PathBuf],
        configured_in: &Path,
    ) -> Result<Helper, CredentialError> {
        let file = format!("docker-credential-{name}");
        let program = dirs
            .iter()
            .filter(|d| d.is_absolute())
            .map(|d| d.join(&file))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| CredentialError::HelperNotFound {
                program: file,
                configured_in: configured_in.to_path_buf(),
            })?;
        Ok(Helper {
            program,
            timeout: TIMEOUT,
        })
    }

    #[cfg(test)]
    pub(super) fn with_timeout(program: PathBuf, timeout: Duration) -> Helper {
        Helper { program, timeout }
    }

    /// The credential the helper holds for `server_url`, None when it has none.
    pub(super) fn get(&self, server_url: &str) -> Result<Option<Credential>, CredentialError> {
        let out = self.run("get", server_url.as_bytes())?;
        if !out.status.success() {
            return match self.complaint(&out) {
                Some(NOT_FOUND) => Ok(None),
                _ => Err(self.failed("get", &out)),
            };
        }
        let malformed = || CredentialError::HelperOutput {
            program: self.program.clone(),
            action: "get",
            reason: "an answer that is not a JSON object with string Username and Secret",
        };
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&out.stdout) else {
            return Err(malformed());
        };
        // Go's JSON decoder, which every helper's client uses, matches field names ignoring
        // case; so does this.
        let field = |name: &str| match answer.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            None | Some((_, Value::Null)) => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some(_) => Err(malformed()),
        };
        let (username, secret) = (field("Username")?, field("Secret")?);
        Ok(match (username.as_str(), secret.is_empty()) {
            (_, true) if username.is_empty() => None,
            (TOKEN_USERNAME, _) => Some(Credential::IdentityToken(secret)),
            _ => Some(Credential::Basic {
                username,
                password: secret,
            }),
        })
    }

    /// Hands the helper `credential` for `server_url`.
    pub(super) fn store(
        &self,
        server_url: &str,
        credential: &Credential,
    ) -> Result<(), CredentialError> {
        let (username, secret) = match credential {
            Credential::Basic { username, password } => (username.as_str(), password),
            Credential::IdentityToken(token) => (TOKEN_USERNAME, token),
        };
        let input = serde_json::json!({
            "ServerURL": server_url,
            "Username": username,
            "Secret": secret,
        });
        let out = self.run("store", input.to_string().as_bytes())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed("store", &out))
        }
    }

    /// Has the helper forget `server_url`; false when it held nothing for it.
    pub(super) fn erase(&self, server_url: &str) -> Result<bool, CredentialError> {
        let out = self.run("erase", server_url.as_bytes())?;
        if out.status.success() {
            return Ok(true);
        }
        match self.complaint(&out) {
            Some(NOT_FOUND) => Ok(false),
            _ => Err(self.failed("erase", &out)),
        }
    }

    /// The helper's stdout when it is one of the protocol's fixed messages, else None.
    fn complaint(&self, out: &Output) -> Option<&'static str> {
        let said = String::from_utf8_lossy(&out.stdout);
        let said = said.trim();
        std::iter::once(NOT_FOUND)
            .chain(KNOWN_COMPLAINTS)
            .find(|known| *known == said)
    }

    fn failed(&self, action: &'static str, out: &Output) -> CredentialError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut stderr = stderr.trim().to_string();
        if stderr.len() > STDERR_LIMIT {
            let mut cut = STDERR_LIMIT;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push('…');
        }
        CredentialError::HelperFailed {
            program: self.program.clone(),
            action,
            status: out.status.to_string(),
            message: self.complaint(out).map(str::to_string),
            stderr,
        }
    }

    /// Runs `program action` with `input` on stdin, within the timeout. The helper gets its
    /// own process group so that, on timeout, whatever it started goes too and its pipes
    /// close.
    fn run(&self, action: &'static str, input: &[u8]) -> Result<Output, CredentialError> {
        let spawn_error = |source| CredentialError::Io {
            path: self.program.clone(),
            source,
        };
        let mut child = spawn_retrying(
            Command::new(&self.program)
                .arg(action)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0),
        )
        .map_err(spawn_error)?;
        let group = rustix::process::Pid::from_child(&child);
        let deadline = Instant::now() + self.timeout;

        // Threads, so that a helper that writes before reading all its input, or writes
        // more than a pipe holds, cannot deadlock with us.
        let mut stdin = child.stdin.take().expect("stdin was piped");
        let input = input.to_vec();
        std::thread::spawn(move || {
            // A helper may exit without reading (erase of nothing): a broken pipe is its
            // answer, not an error.
            let _ = stdin.write_all(&input);
        });
        let stdout = drain(
            child.stdout.take().expect("stdout was piped"),
            STDOUT_LIMIT + 1,
        );
        let stderr = drain(
            child.stderr.take().expect("stderr was piped"),
            STDERR_LIMIT * 4,
        );

        let timed_out = || {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            CredentialError::HelperTimeout {
                program: self.program.clone(),
                action,
                seconds: self.timeout.as_secs_f64(),
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let err = timed_out();
                    let _ = child.wait();
                    return Err(err);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => return Err(spawn_error(source)),
            }
        };
        // The helper has exited, but something it started may still hold its pipes open.
        let rest = |rx: &mpsc::Receiver<io::Result<Vec<u8>>>| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left)
        };
        let (Ok(stdout), Ok(stderr)) = (rest(&stdout), rest(&stderr)) else {
            return Err(timed_out());
        };
        let (stdout, stderr) = (stdout.map_err(spawn_error)?, stderr.map_err(spawn_error)?);
        if stdout.len() > STDOUT_LIMIT {
            return Err(CredentialError::HelperOutput {
                program: self.program.clone(),
                action,
                reason: "an answer over 1 MiB",
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Reads `from` to its end on a thread, keeping the first `keep` bytes: reading on past them
/// keeps the writer from blocking on a full pipe.
fn drain(mut from: impl Read + Send + 'static, keep: usize) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let result = (&mut from)
            .take(keep as u64)
            .read_to_end(&mut kept)
            .and_then(|_| io::copy(&mut from, &mut io::sink()))
            .map(|_| kept);
        let _ = tx.send(result);
    });
    rx
}

/// Spawns, retrying briefly on ETXTBSY: a helper just installed (or written by another
/// thread of this process, whose forks may briefly hold it open for writing) cannot be
/// executed for that moment.
fn spawn_retrying(command: &mut Command) -> io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}
