//! A real registry for the registry tests: Debian's `docker-registry` (distribution 2.8) on a
//! free loopback port with temporary storage, over plain HTTP or TLS (a test CA made with
//! openssl), anonymous, with Basic auth (htpasswd) or with the Bearer token flow (a token
//! issuer in this harness signs the JWTs with a key the registry trusts). Also a fault proxy
//! that stands between strata and the registry, and the helpers the registry tests share.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::util::{peer, peer_ok, s, tempdir};

/// The user the authenticated registries know.
pub const USER: &str = "tester";
/// Its password: tests check it never shows in strata's output.
pub const PASSWORD: &str = "Pa55-w0rd-never-printed";

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Everyone may pull and push.
    Anonymous,
    /// HTTP Basic against an htpasswd file.
    Basic,
    /// Bearer tokens from the harness's token issuer (which takes Basic credentials).
    Token,
    /// Bearer tokens, and anonymous ones that may only pull (a public repository, as on
    /// Docker Hub).
    TokenPublic,
}

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, the registry part of image names.
    pub host: String,
    /// The CA certificate that signed the registry's (TLS registries only).
    pub ca: Option<PathBuf>,
    /// The token issuer (token registries only).
    pub issuer: Option<TokenIssuer>,
    log: PathBuf,
    /// Holds the config, certificates and storage; removed after the registry is killed.
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// A plain HTTP registry without auth; None when docker-registry is missing (a failure
    /// under STRATA_REQUIRE_PEERS=1).
    pub fn plain() -> Option<Registry> {
        Registry::start(false, Auth::Anonymous)
    }

    /// Starts a registry. None (the test skips, visibly) when docker-registry is not on PATH,
    /// unless STRATA_REQUIRE_PEERS=1, where that panics.
    pub fn start(tls: bool, auth: Auth) -> Option<Registry> {
        if !peer("docker-registry") || (tls || auth != Auth::Anonymous) && !peer("openssl") {
            return None;
        }
        if auth == Auth::Basic && !peer("htpasswd") {
            return None;
        }
        let dir = tempdir();
        let root = dir.path();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:@PORT@\n",
            s(&root.join("storage"))
        );
        let ca = if tls {
            let pki = server_pki(root);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                s(&pki.server_cert),
                s(&pki.server_key)
            ));
            Some(pki.ca_cert)
        } else {
            None
        };
        let issuer = match auth {
            Auth::Anonymous => None,
            Auth::Basic => {
                let line = peer_ok("htpasswd", &["-Bbn", USER, PASSWORD]);
                let file = root.join("htpasswd");
                std::fs::write(&file, line.trim_end().as_bytes()).expect("writing htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    s(&file)
                ));
                None
            }
            Auth::Token | Auth::TokenPublic => {
                let issuer = TokenIssuer::start(root, auth == Auth::TokenPublic);
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    issuer.realm,
                    TokenIssuer::SERVICE,
                    TokenIssuer::ISSUER,
                    s(&issuer.cert)
                ));
                Some(issuer)
            }
        };
        let config_path = root.join("config.yml");
        let log = root.join("registry.log");
        let spawn = |port: u16| {
            std::fs::write(&config_path, config.replace("@PORT@", &port.to_string()))
                .expect("writing the registry config");
            let log_file = std::fs::File::create(&log).expect("creating the registry log");
            Command::new("docker-registry")
                .args(["serve", s(&config_path)])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup"))
                .stderr(log_file)
                .spawn()
                .expect("starting docker-registry")
        };
        let port = free_port();
        let mut registry = Registry {
            child: spawn(port),
            host: format!("127.0.0.1:{port}"),
            ca,
            issuer,
            log: log.clone(),
            dir,
        };
        // The port was free a moment ago; another test may have taken it since.
        for _ in 0..5 {
            if registry.wait_ready() {
                return Some(registry);
            }
            let port = free_port();
            registry.child = spawn(port);
            registry.host = format!("127.0.0.1:{port}");
        }
        panic!("docker-registry found no free port:\n{}", registry.log());
    }

    /// Waits until the registry accepts connections (and, over plain HTTP, answers `/v2/`).
    /// False when it could not bind its port.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if self.log().contains("address already in use") {
                    return false;
                }
                panic!(
                    "docker-registry exited ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let answered = if self.ca.is_some() {
                TcpStream::connect(&self.host).is_ok()
            } else {
                http_status(&self.host, "GET", "/v2/", &[]).is_some()
            };
            if answered {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {} within 20 s:\n{}",
                self.host,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `HOST/REPO[:TAG]`.
    pub fn name(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.host)
    }

    /// What the registry logged (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on now (the registry binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// The status of a plain HTTP request, None when nothing answered.
pub fn http_status(host: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn openssl(args: &[&str]) {
    peer_ok("openssl", args);
}

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Makes a CA and a server certificate under `dir/pki`. EC P-256 keys: quick to generate,
/// and both Go's TLS and rustls take them.
pub fn server_pki(dir: &Path) -> Pki {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("creating pki dir");
    let p = |n: &str| pki.join(n);
    let (ca_key, ca_cert) = (p("ca.key"), p("ca.crt"));
    let (key, csr, cert, ext) = (
        p("server.key"),
        p("server.csr"),
        p("server.crt"),
        p("ext.cnf"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&ca_key),
        "-out",
        s(&ca_cert),
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("writing ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&ca_cert),
        "-CAkey",
        s(&ca_key),
        "-CAcreateserial",
        "-out",
        s(&cert),
        "-days",
        "2",
        "-extfile",
        s(&ext),
    ]);
    Pki {
        ca_cert,
        server_cert: cert,
        server_key: key,
    }
}

/// base64url without padding, as JWTs write their parts.
fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The harness's token service: answers `GET /token?service=..&scope=..` with a JWT (RS256,
/// its self-signed certificate in `x5c`, the registry's `rootcertbundle`) granting what the
/// scopes ask, for the right Basic credentials only. Stops on drop.
pub struct TokenIssuer {
    /// The realm URL the registry's challenge names.
    pub realm: String,
    /// The signing certificate (PEM), which the registry trusts.
    pub cert: PathBuf,
    /// Tokens issued.
    pub issued: Arc<AtomicUsize>,
    /// Requests refused (no or wrong credentials).
    pub refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenIssuer {
    /// The `service` the registry says it is and the tokens' audience.
    pub const SERVICE: &'static str = "strata-test-registry";
    /// The tokens' issuer.
    pub const ISSUER: &'static str = "strata-test-issuer";

    fn start(dir: &Path, public: bool) -> TokenIssuer {
        let keys = dir.join("token");
        std::fs::create_dir_all(&keys).expect("creating token dir");
        let key = keys.join("signing.key");
        let cert = keys.join("signing.crt");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
            "-days",
            "2",
            "-subj",
            "/CN=strata token issuer",
        ]);
        let der = Command::new("openssl")
            .args(["x509", "-in", s(&cert), "-outform", "DER"])
            .output()
            .expect("running openssl x509");
        assert!(der.status.success(), "openssl x509 -outform DER failed");
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the token issuer");
        let port = listener.local_addr().expect("addr").port();
        let (issued, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (issued, refused, stop) = (issued.clone(), refused.clone(), stop.clone());
            let work = keys.clone();
            std::thread::spawn(move || {
                for (n, conn) in listener.incoming().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let ctx = IssuerCtx {
                        key: &key,
                        x5c: &x5c,
                        work: &work,
                        serial: n,
                        public,
                    };
                    match serve_token(conn, &ctx) {
                        Some(true) => issued.fetch_add(1, Ordering::SeqCst),
                        Some(false) => refused.fetch_add(1, Ordering::SeqCst),
                        None => 0,
                    };
                }
            })
        };
        TokenIssuer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert,
            issued,
            refused,
            stop,
            port,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct IssuerCtx<'a> {
    /// Anonymous requests get tokens that may pull.
    public: bool,
    key: &'a Path,
    x5c: &'a str,
    work: &'a Path,
    serial: usize,
}

/// One token request. Some(true): a token was issued; Some(false): refused; None: not a
/// request.
fn serve_token(conn: TcpStream, ctx: &IssuerCtx<'_>) -> Option<bool> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let request = read_head(&mut reader)?;
    let mut conn = conn;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let anonymous = request.header("authorization").is_none() && ctx.public;
    if !anonymous && request.header("authorization") != Some(expected.as_str()) {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return Some(false);
    }
    let query = request.path.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k != "scope" {
            continue;
        }
        let scope = percent_decode(v);
        // type:name:actions, where the name may hold ':' (a port) but not the actions.
        let Some((rest, actions)) = scope.rsplit_once(':') else {
            continue;
        };
        let Some((kind, name)) = rest.split_once(':') else {
            continue;
        };
        access.push(serde_json::json!({
            "type": kind,
            "name": name,
            "actions": actions
                .split(',')
                .filter(|a| !anonymous || *a == "pull")
                .collect::<Vec<_>>(),
        }));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [ctx.x5c]});
    let claims = serde_json::json!({
        "iss": TokenIssuer::ISSUER,
        "sub": USER,
        "aud": TokenIssuer::SERVICE,
        "exp": now + 600,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("strata-test-{now}-{}", ctx.serial),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let input = ctx.work.join(format!("input-{}", ctx.serial));
    std::fs::write(&input, &signing_input).ok()?;
    let signed = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", s(ctx.key), s(&input)])
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&input);
    if !signed.status.success() {
        return None;
    }
    let token = format!("{signing_input}.{}", b64url(&signed.stdout));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 600}).to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(true)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's head: method, path and headers.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an HTTP/1.1 request head; None at EOF or on what is not HTTP (a TLS handshake).
fn read_head(reader: &mut impl BufRead) -> Option<Head> {
    let first = reader.fill_buf().ok()?;
    if first.is_empty() || !first[0].is_ascii_uppercase() {
        return None;
    }
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Some(Head {
        method,
        path,
        headers,
    })
}

/// What the fault proxy does to a request it matches.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answers this status itself (with `Retry-After` when given), without asking the
    /// registry.
    Status(u16, Option<u32>),
    /// Forwards, then closes the connection after this many bytes of the response body.
    DropAfter(usize),
    /// Forwards, then closes the connection without a word of the response: the registry
    /// did the work, the client never hears of it.
    Lose,
    /// Forwards with the body byte at this offset flipped.
    Corrupt(usize),
    /// Forwards the body in pieces of this size, pausing between them.
    Slow(usize, Duration),
    /// Answers `307` to the same path on this other `host:port` (object storage).
    Redirect(String),
    /// Forwards without the request's `Range` header, as a server that ignores ranges.
    IgnoreRange,
    /// Waits this long, then forwards (a slow upload).
    Delay(Duration),
    /// Answers this status, these headers and this body itself (a hostile registry).
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Answers `401` with this `WWW-Authenticate` challenge (a token the registry no longer
    /// takes).
    Challenge(String),
}

/// A fault: requests of `method` whose path holds `path_contains` get `action`, `times`
/// times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path_contains: String,
    pub times: u32,
    pub action: Action,
}

impl Fault {
    /// A fault on blob downloads (`GET .../blobs/sha256:...`).
    pub fn blob_get(times: u32, action: Action) -> Fault {
        Fault {
            method: "GET",
            path_contains: "/blobs/sha256:".into(),
            times,
            action,
        }
    }
}

/// A loopback HTTP proxy in front of a plain HTTP registry that strata talks to as if it were
/// the registry (`127.0.0.1:PROXYPORT/...`), injecting faults. Stops on drop.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    /// Every request seen, as `METHOD PATH` (with ` range=...` when it had a `Range` header
    /// and ` [authorization]` when it carried credentials), and each fault applied, as
    /// `fault: ...`.
    seen: Arc<Mutex<Vec<String>>>,
    /// An `Authorization` value put on every forwarded request instead of the client's (a
    /// stand-in for object storage's signed URLs).
    inject: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl FaultProxy {
    /// A proxy to the registry at `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("addr").port();
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let inject: Arc<Mutex<Option<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let shared = Shared {
                upstream: upstream.to_owned(),
                faults: faults.clone(),
                seen: seen.clone(),
                inject: inject.clone(),
            };
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || proxy_connection(conn, &shared));
                }
            });
        }
        FaultProxy {
            host: format!("127.0.0.1:{port}"),
            faults,
            seen,
            inject,
            stop,
            port,
        }
    }

    /// Puts `authorization` on every request forwarded (None: the client's own).
    pub fn inject_authorization(&self, authorization: Option<String>) {
        *self.inject.lock().expect("inject") = authorization;
    }

    /// Adds a fault.
    pub fn add(&self, fault: Fault) {
        self.faults.lock().expect("faults").push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.faults.lock().expect("faults").clear();
    }

    /// `HOST/REPO[:TAG]` through the proxy.
    pub fn name(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.host)
    }

    /// The requests and faults seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    /// How many faults were applied.
    pub fn faults_applied(&self) -> usize {
        self.seen()
            .iter()
            .filter(|l| l.starts_with("fault:"))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// What every connection of a proxy shares.
#[derive(Clone)]
struct Shared {
    upstream: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    seen: Arc<Mutex<Vec<String>>>,
    inject: Arc<Mutex<Option<String>>>,
}

/// Serves one client connection: request by request, each forwarded on a connection of its
/// own (`Connection: close`, so the registry's response ends at EOF) unless a fault answers.
fn proxy_connection(conn: TcpStream, shared: &Shared) {
    let Shared {
        upstream,
        faults,
        seen,
        inject,
    } = shared;
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = conn;
    while let Some(head) = read_head(&mut reader) {
        if head.method == "CONNECT" {
            let mut line = format!("CONNECT {}", head.path);
            if head.header("proxy-authorization").is_some() {
                line.push_str(" [proxy-authorization]");
            }
            seen.lock().expect("seen").push(line);
            tunnel(reader, client, &head.path);
            return;
        }
        let length: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut line = format!("{} {}", head.method, head.path);
        if let Some(r) = head.header("range") {
            line.push_str(&format!(" range={r}"));
        }
        if head.header("authorization").is_some() {
            line.push_str(" [authorization]");
        }
        seen.lock().expect("seen").push(line);
        let action = {
            let mut faults = faults.lock().expect("faults");
            faults
                .iter_mut()
                .find(|f| {
                    f.times > 0 && f.method == head.method && head.path.contains(&f.path_contains)
                })
                .map(|f| {
                    f.times -= 1;
                    f.action.clone()
                })
        };
        if let Some(a) = &action {
            if !matches!(a, Action::Slow(..) | Action::Delay(..)) {
                seen.lock()
                    .expect("seen")
                    .push(format!("fault: {a:?} on {} {}", head.method, head.path));
            }
        }
        if let Some(Action::Status(code, retry_after)) = action {
            let mut response = format!("HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\n");
            if let Some(r) = retry_after {
                response.push_str(&format!("Retry-After: {r}\r\n"));
            }
            response.push_str("\r\n");
            if client.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if let Some(Action::Answer(code, headers, answer)) = &action {
            let mut response = format!(
                "HTTP/1.1 {code} Hostile\r\nContent-Length: {}\r\n",
                answer.len()
            );
            for (k, v) in headers {
                response.push_str(&format!("{k}: {v}\r\n"));
            }
            response.push_str("\r\n");
            if client
                .write_all(response.as_bytes())
                .and_then(|()| client.write_all(answer))
                .is_err()
            {
                return;
            }
            continue;
        }
        if let Some(Action::Challenge(challenge)) = &action {
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n"
            );
            if client.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if let Some(Action::Redirect(to)) = &action {
            // `HOST?QUERY` redirects to the same path at HOST with QUERY, as object storage's
            // signed URLs look.
            let (host, query) = match to.split_once('?') {
                Some((h, q)) => (h, format!("?{q}")),
                None => (to.as_str(), String::new()),
            };
            let response = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{host}{}{query}\r\nContent-Length: 0\r\n\r\n",
                head.path
            );
            if client.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if let Some(Action::Delay(pause)) = &action {
            std::thread::sleep(*pause);
        }
        let mut head = head;
        if matches!(action, Some(Action::IgnoreRange)) {
            head.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
        }
        if let Some(a) = inject.lock().expect("inject").clone() {
            head.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            head.headers.push(("Authorization".into(), a));
        }
        let Some(response) = forward(upstream, &head, &body) else {
            return;
        };
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |i| i + 4);
        let (resp_head, resp_body) = response.split_at(split);
        let mut resp_body = resp_body.to_vec();
        let result = match action {
            Some(Action::Lose) => {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Some(Action::DropAfter(n)) => {
                let n = n.min(resp_body.len());
                let _ = client.write_all(resp_head);
                let _ = client.write_all(&resp_body[..n]);
                let _ = client.flush();
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Some(Action::Corrupt(at)) => {
                if let Some(b) = resp_body.get_mut(at) {
                    *b ^= 0xff;
                }
                client
                    .write_all(resp_head)
                    .and_then(|()| client.write_all(&resp_body))
            }
            Some(Action::Slow(piece, pause)) => client.write_all(resp_head).and_then(|()| {
                for part in resp_body.chunks(piece.max(1)) {
                    client.write_all(part)?;
                    client.flush()?;
                    std::thread::sleep(pause);
                }
                Ok(())
            }),
            _ => client
                .write_all(resp_head)
                .and_then(|()| client.write_all(&resp_body)),
        };
        if result.is_err() {
            return;
        }
        // The registry was asked to close: its response may end at EOF, so this connection
        // cannot carry another.
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
}

/// Answers a CONNECT (the proxy as an HTTPS proxy) and passes bytes both ways until either
/// side closes.
fn tunnel(mut from_client: BufReader<TcpStream>, mut to_client: TcpStream, target: &str) {
    let Ok(mut up) = TcpStream::connect(target) else {
        let _ = to_client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if to_client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let Ok(mut up_write) = up.try_clone() else {
        return;
    };
    let upward = std::thread::spawn(move || {
        // What the client sent after the CONNECT line may already sit in the buffer.
        let _ = std::io::copy(&mut from_client, &mut up_write);
        let _ = up_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut up, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = upward.join();
}

/// Sends one request to the registry and returns its whole response.
fn forward(upstream: &str, head: &Head, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut request = format!("{} {} HTTP/1.1\r\n", head.method, head.path);
    for (k, v) in &head.headers {
        if k.eq_ignore_ascii_case("connection") {
            continue;
        }
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    up.write_all(request.as_bytes()).ok()?;
    // A registry may answer (an error) before it has read the body, and close: its answer
    // is still there to read.
    let _ = up.write_all(body);
    let mut response = Vec::new();
    up.read_to_end(&mut response).ok()?;
    Some(response)
}

/// A docker config directory (for `DOCKER_CONFIG`) holding credentials for `host`.
pub fn docker_config(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    let config = dir.join("docker-config");
    std::fs::create_dir_all(&config).expect("creating docker config dir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let doc = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(config.join("config.json"), doc.to_string()).expect("writing config.json");
    config
}

/// A layout built with strata from directory trees: one `strata build` per tree (each on
/// the previous one), tagged `tag`. Returns the layout's path.
pub fn strata_built(dir: &Path, name: &str, tag: &str, trees: &[&[(&str, &[u8])]]) -> PathBuf {
    let layout = dir.join(name);
    for (i, files) in trees.iter().enumerate() {
        let tree = dir.join(format!("{name}-tree{i}"));
        for (path, content) in *files {
            let p = tree.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, content).expect("writing a tree file");
        }
        let dest = format!("{}:{tag}", s(&layout));
        let mut args = vec!["build", s(&tree), dest.as_str()];
        let from = format!("{}:{tag}", s(&layout));
        if i > 0 {
            args.extend(["--from", from.as_str()]);
        }
        super::util::ok(&args);
    }
    layout
}

/// The digest strata's `ls --json` gives the entry tagged `tag`, if any.
pub fn tagged_digest(layout: &Path, tag: &str) -> Option<String> {
    let ls = super::util::json(&["ls", s(layout), "--json"]);
    ls["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["tag"] == tag)
        .map(|i| i["digest"].as_str().expect("digest").to_owned())
}

/// A blob's bytes in a layout.
pub fn blob_bytes(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("reading blob {digest} in {}: {e}", layout.display()))
}

/// Asserts `strata fsck` finds the layout sound.
pub fn assert_fsck(layout: &Path) {
    let r = super::util::run(&["fsck", s(layout)]);
    assert_eq!(
        r.code,
        0,
        "fsck {}:\nstdout: {}\nstderr: {}",
        layout.display(),
        r.stdout,
        r.stderr
    );
}

/// Unpacks `reference` into `dir/bundle` and scans its rootfs.
pub fn unpacked(reference: &str, bundle: &Path) -> super::util::Tree {
    super::util::ok(&["unpack", reference, s(bundle)]);
    super::util::scan(&bundle.join("rootfs"))
}

/// Bytes that do not compress, from a fixed seed.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&(seed >> 24).to_le_bytes()[..4]);
    }
    out.truncate(len);
    out
}

/// Runs a command to its end, sampling its peak resident set (`VmHWM`) every few
/// milliseconds; returns its exit code, stderr and the largest peak seen, in KiB.
pub fn run_measuring_memory(mut cmd: Command) -> (i32, String, u64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (status.code().unwrap_or(-1), stderr, peak)
}

/// `strata ARGS` run in `dir`, asserting success; returns stdout. `artifact push` and
/// `attach` title files by the path given, which must be relative.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = super::util::strata(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    assert!(
        out.status.success(),
        "strata {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
